#!/usr/bin/env python3
"""The Python side of afx's host comparison (BENCHMARKS.md, "afx's host against a Python host").

Hosts one LV2 plugin through lilv's Python bindings (lilv.py, from Debian's lilv source package;
scripts/bench-python-host.sh fetches it) and does the plugin work of DeepAFx's SPSA step the way
its per-item loop does it (Martínez Ramírez et al. 2021): each batch item is rendered at its
nominal knobs and at the + and − perturbations, each render through its own long-lived instance,
the signal copied in and out of numpy buffers one hop at a time (1024 frames), a little noise
added and the output clipped. Prints one JSON line: the frames rendered per second on one core.

Usage: python-host.py LILV_PY_DIR URI [--items N] [--frames F] [--rate HZ] [--hop H] [--repeats R]
"""
import argparse
import json
import sys
import time


def host(lilv, numpy, uri, rate, hop):
    world = lilv.World()
    world.load_all()
    ns = world.ns
    plugins = world.get_all_plugins()
    node = world.new_uri(uri)
    if node not in plugins:
        sys.exit(f"error: plugin {uri} is not installed")
    plugin = plugins[node]

    class Instance:
        """One instance with every port connected: audio to hop-sized buffers, controls to
        one-value arrays at their defaults, atom ports to an empty sequence."""

        def __init__(self):
            self.instance = lilv.Instance(plugin, rate)
            self.inputs, self.outputs, self.controls = [], [], {}
            self.keep = []
            for index in range(plugin.get_num_ports()):
                port = plugin.get_port_by_index(index)
                if port.is_a(ns.lv2.AudioPort):
                    buffer = numpy.zeros(hop, numpy.float32)
                    (self.inputs if port.is_a(ns.lv2.InputPort) else self.outputs).append(buffer)
                elif port.is_a(ns.lv2.ControlPort):
                    default = port.get_range()[0]
                    value = float(str(default)) if default is not None else 0.0
                    buffer = numpy.array([value], numpy.float32)
                    if port.is_a(ns.lv2.InputPort):
                        self.controls[index] = buffer
                else:
                    # An atom port: an empty sequence (8-byte header + 8-byte body), room after it
                    # for a plugin that writes events.
                    buffer = numpy.zeros(4096, numpy.uint32)
                    buffer[0] = 8
                self.keep.append(buffer)
                self.instance.connect_port(index, buffer)
            self.instance.activate()

        def set(self, values):
            for index, value in values.items():
                self.controls[index][0] = value

        def render(self, signal):
            noise = 1e-5 * numpy.random.normal(0.0, 1.0, size=signal.shape)
            channels = signal + noise
            out = numpy.empty(signal.shape)
            for left in range(0, signal.shape[0] - hop + 1, hop):
                for buffer in self.inputs:
                    buffer[:] = channels[left:left + hop]
                self.instance.run(hop)
                out[left:left + hop] = self.outputs[0]
            return numpy.clip(out, -100.0, 100.0) + noise

    return Instance


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("lilv_dir")
    parser.add_argument("uri")
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--frames", type=int, default=65536)
    parser.add_argument("--rate", type=int, default=48000)
    parser.add_argument("--hop", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, args.lilv_dir)
    import lilv
    import numpy

    numpy.random.seed(1)
    Instance = host(lilv, numpy, args.uri, args.rate, args.hop)
    nominal, plus, minus = Instance(), Instance(), Instance()
    t = numpy.arange(args.frames) / args.rate
    items = [0.3 * numpy.sin(2 * numpy.pi * (110 + 50 * i) * t) * (1 + numpy.sin(2 * numpy.pi * 2 * t)) / 2
             + 0.05 * numpy.random.normal(0.0, 1.0, args.frames) for i in range(args.items)]
    controls = sorted(nominal.controls)
    defaults = {i: float(nominal.controls[i][0]) for i in controls}
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        for signal in items:
            # The forward pass renders the nominal knobs; the gradient the two perturbations.
            nominal.set(defaults)
            nominal.render(signal)
            for instance in (plus, minus):
                instance.set(defaults)
                instance.render(signal)
        best = min(best, time.perf_counter() - start)
    frames = 3 * args.items * args.frames
    print(json.dumps({"uri": args.uri, "hop": args.hop, "mframes_per_s": frames / best / 1e6}))


if __name__ == "__main__":
    main()

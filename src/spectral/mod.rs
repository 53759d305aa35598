//! Short-time Fourier transforms, the multi-resolution STFT loss with its exact gradient, and
//! mel filterbanks.

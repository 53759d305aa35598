//! Audio in and out: decoding, WAV encoding, resampling and channel handling.

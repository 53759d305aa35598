//! Gradient estimators: from the gradient of a loss with respect to a rendered output, the
//! gradient with respect to the knobs.

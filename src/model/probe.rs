//! A linear probe: softmax regression from fixed embeddings to class labels, the test of how
//! much of a label an embedding holds linearly (DeepAFx-ST §6.3 probes its encoders' embeddings
//! for the five named styles).

use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;

/// A trained probe, with the standardisation of its inputs.
pub struct LinearProbe {
    linear: Linear,
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl LinearProbe {
    /// Fits a probe to `embeddings` (rows of equal length) with labels in `0..classes`: inputs
    /// standardised per dimension, full-batch Adam (rate 1e-2) for `epochs` epochs on the
    /// cross-entropy; `seed` draws the initial weights.
    pub fn fit(embeddings: &[Vec<f32>], labels: &[usize], classes: usize, epochs: usize, seed: u64) -> Self {
        assert_eq!(embeddings.len(), labels.len(), "one label per embedding");
        let dim = embeddings.first().map_or(0, Vec::len);
        let n = embeddings.len() as f32;
        let mean: Vec<f32> = (0..dim).map(|d| embeddings.iter().map(|e| e[d]).sum::<f32>() / n).collect();
        let std: Vec<f32> =
            (0..dim).map(|d| (embeddings.iter().map(|e| (e[d] - mean[d]).powi(2)).sum::<f32>() / n).sqrt().max(1e-6)).collect();
        let device = Device::flex().autodiff();
        let mut linear = {
            let _guard = super::network::seeded(&device, seed);
            let linear = LinearConfig::new(dim, classes).init(&device);
            super::network::materialize(&linear);
            linear
        };
        let x = standardised(embeddings, &mean, &std, &device);
        let targets: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [labels.len()]), &device);
        let loss = CrossEntropyLossConfig::new().init(&device);
        let mut optimizer = AdamConfig::new().init();
        for _ in 0..epochs {
            let value = loss.forward(linear.forward(x.clone()), targets.clone());
            let grads = GradientsParams::from_grads(value.backward(), &linear);
            linear = optimizer.step(1e-2, linear, grads);
        }
        Self { linear: linear.valid(), mean, std }
    }

    /// The most likely class of each embedding.
    pub fn predict(&self, embeddings: &[Vec<f32>]) -> Vec<usize> {
        let logits = self.linear.forward(standardised(embeddings, &self.mean, &self.std, &Device::flex()));
        let classes = logits.dims()[1];
        let values = logits.into_data().try_into_vec::<f32>().expect("f32 logits");
        values
            .chunks_exact(classes)
            .map(|row| row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best }))
            .collect()
    }

    /// The fraction of `embeddings` whose predicted class is their label.
    pub fn accuracy(&self, embeddings: &[Vec<f32>], labels: &[usize]) -> f64 {
        let right = self.predict(embeddings).iter().zip(labels).filter(|(p, l)| p == l).count();
        right as f64 / labels.len().max(1) as f64
    }
}

fn standardised(rows: &[Vec<f32>], mean: &[f32], std: &[f32], device: &Device) -> Tensor<2> {
    let dim = mean.len();
    let values: Vec<f32> = rows.iter().flat_map(|r| r.iter().zip(mean).zip(std).map(|((v, m), s)| (v - m) / s)).collect();
    Tensor::from_data(TensorData::new(values, [rows.len(), dim]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Three classes that differ along one direction of a noisy 6-d space are found; labels
    /// that carry no information give chance-level accuracy on held-out points.
    #[test]
    fn separates_linearly_separable_classes_and_not_noise() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut draw = |count: usize, informative: bool| {
            let mut points = Vec::new();
            let mut labels = Vec::new();
            for i in 0..count {
                let label = i % 3;
                let mut p: Vec<f32> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
                if informative {
                    p[2] += 4.0 * label as f32;
                }
                points.push(p);
                labels.push(label);
            }
            (points, labels)
        };
        let ((train, train_labels), (test, test_labels)) = (draw(300, true), draw(150, true));
        let probe = LinearProbe::fit(&train, &train_labels, 3, 300, 0);
        let accuracy = probe.accuracy(&test, &test_labels);
        assert!(accuracy > 0.95, "{accuracy}");
        let ((train, train_labels), (test, test_labels)) = (draw(90, false), draw(300, false));
        let probe = LinearProbe::fit(&train, &train_labels, 3, 300, 0);
        assert!(probe.accuracy(&test, &test_labels) < 0.5);
    }
}

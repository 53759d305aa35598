//! Training, in one loop for every model kind ([`run`]): style networks through the effect
//! chain with any estimator, and the cTCN baseline ([`style`], `afx train`); neural proxies of a
//! chain ([`proxy`], `afx proxy train`).

pub mod proxy;
pub mod run;
pub mod style;

pub use proxy::{ProxyMatch, ProxyTrainConfig, evaluate_proxy, train_proxy};
pub use run::{LogRow, RunState, Summary, Validation};
pub use style::{EstimatorKind, TrainConfig, train};
#[cfg(feature = "cli")]
pub use {
    proxy::{ProxyEvalArgs, ProxyTrainArgs},
    run::{BudgetArgs, RunArgs},
    style::{OldProxyArgs, TrainArgs},
};

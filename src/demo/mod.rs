//! The built-in demo case app that `casegate demo` puts behind the gateway: a tiny legacy-style
//! case application with a case page, a seekable video, JSON, a comment API and pages a
//! view-only guest must not reach.

mod app;
mod cases;
mod video;

pub use app::{DemoAppHandle, spawn_demo_app};

pub mod proxy;
pub mod serve;

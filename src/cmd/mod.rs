pub mod proxy;
pub mod run;
pub mod serve;
pub mod validate;

pub mod compare;
pub mod list;
pub mod proxy;
pub mod report;
pub mod run;
pub mod serve;
pub mod validate;

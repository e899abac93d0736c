//! What terraform saved: the backend recorded in `<data dir>/terraform.tfstate`, the backend copy
//! inside a saved plan file, and the security warnings about what they expose. Readers only: nothing
//! here touches the network or writes a file (the repair is `heal`'s).

pub mod config_file;
pub mod planfile;
pub mod reinit;
pub mod saved;
pub mod secrets;
pub mod tf_block;
pub mod warnings;

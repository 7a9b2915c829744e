//! EL1 test guests (placeholder until the guest programs land).
#![no_std]

//! Renders the inventory (docs page, guest table).

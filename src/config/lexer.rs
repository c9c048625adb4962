//! Caddyfile text → tokens carrying file:line. OWNER: config helper.

//! Upper bounds on everything a URL can carry. They are checked before any
//! allocation that grows with the input, so a hostile URL costs a few microseconds.

/// Largest request head (request line and headers) either server reads:
/// 431 beyond. CDNs and load balancers send far less.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Longest request path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 512;
/// Longest raw query string accepted, in bytes (before decoding).
pub const MAX_QUERY_LEN: usize = 4096;
/// Longest canonical identity query, in bytes: what `MAX_QUERY_LEN` leaves
/// once `&k=…&s=…` is appended, so the canonical, signed URL of any request
/// accepted is itself accepted (percent-encoding can triple a value's length).
pub const MAX_CANONICAL_QUERY_LEN: usize =
    MAX_QUERY_LEN - ("&k=&s=".len() + MAX_KEY_ID_LEN + MAX_SIGNATURE_LEN);
/// Longest signing key id (`k`), in bytes.
pub const MAX_KEY_ID_LEN: usize = 32;
/// Longest signature (`s`): an HMAC-SHA256 is 43 base64url characters.
pub const MAX_SIGNATURE_LEN: usize = 64;
/// Most query parameters in one URL, reserved ones included.
pub const MAX_PARAMS: usize = 32;
/// Longest parameter name, in bytes.
pub const MAX_PARAM_NAME_LEN: usize = 64;
/// Longest value of a parameter that the template does not bound itself, in characters.
pub const DEFAULT_MAX_PARAM_CHARS: usize = 256;
/// Longest `v` (version) value, in characters.
pub const MAX_VERSION_CHARS: usize = 64;
/// Longest template name, in bytes.
pub const MAX_TEMPLATE_NAME_LEN: usize = 64;
/// Largest card a template may declare, per side, in CSS pixels.
pub const MAX_CARD_SIDE: u32 = 4096;
/// Longest rendition source key (below `originals/`), in bytes.
pub const MAX_SOURCE_KEY_LEN: usize = 256;
/// Longest record id in a data-source card URL, in bytes.
pub const MAX_RECORD_ID_LEN: usize = 128;
/// Most rendition presets a deployment may define.
pub const MAX_PRESETS: usize = 32;
/// Longest side a preset may ask for.
pub const MAX_PRESET_SIDE: u32 = 8192;

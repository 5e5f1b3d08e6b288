// Checks the configuration language (src/cfg: lexer, preprocessor, parser)
// and its lowering (src/config.rs `build`, with the route compiler under it)
// on arbitrary text: never a panic, only diagnostics. Includes are served
// from the input itself through the string entry point's loader; the disk
// is never touched.
//
// Input: NUL-separated texts. The first is the main file "/fz/main.cfg"; an
// `include_file`/`import_file` gets one of the others, chosen by its path.
#![no_main]

use std::io;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use siptraced::config;
use siptraced::fuzz_api as f;

/// Includes a file may fan out into: the preprocessor nests up to 10 deep
/// (Kamailio's MAX_INCLUDE_DEPTH), so a file that includes itself twice
/// loads 2^10 times. The configuration is trusted input and Kamailio does
/// the same; the cap keeps the fuzzer's time on the parser.
const MAX_LOADS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let main = parts.next().unwrap_or("");
    let others: Vec<&str> = parts.collect();
    let defines = [
        ("WITH_FUZZ".to_string(), None),
        ("FUZZ_VALUE".to_string(), Some("\"v\"".to_string())),
    ];
    for defines in [&defines[..0], &defines[..]] {
        let mut loads = 0;
        let mut loader = |p: &Path| -> io::Result<String> {
            loads += 1;
            if others.is_empty() || loads > MAX_LOADS {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no such file"));
            }
            let name = p.as_os_str().as_encoded_bytes();
            let pick: usize = name.iter().map(|&b| usize::from(b)).sum();
            Ok(others[pick % others.len()].to_string())
        };
        match f::cfg_parse_with("/fz/main.cfg", main, defines, &mut loader) {
            Ok(cfg) => {
                let _ = cfg.to_string();
                if let Err(diags) = config::build(&cfg) {
                    assert!(!diags.is_empty(), "build failed without a diagnostic");
                    for d in diags {
                        let _ = d.to_string();
                    }
                }
            }
            Err(diags) => assert!(!diags.is_empty(), "parse failed without a diagnostic"),
        }
    }
});

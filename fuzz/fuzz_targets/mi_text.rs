// Checks the MI FIFO text reader (src/mi/text.rs): any byte stream, with
// reply FIFOs that open or fail, never panics and never loops; and what it
// yields does not depend on how the stream was cut into reads (the FIFO
// delivers whatever the writer's chunks were), so feeding it all at once and
// one byte at a time must give the same events.
//
// Input: the first byte's low bit says whether reply FIFOs open; the rest is
// the FIFO stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use siptraced::fuzz_api as f;
use siptraced::mi::text::{CommandKind, TextEvent, TextReader};

/// The command table shape that matters to the reader: which commands take
/// arguments. Real names first, then every kind reachable by name length.
fn lookup(cmd: &[u8]) -> CommandKind {
    match cmd {
        b"sip_trace" | b"debug" | b"kill" => CommandKind::WithInput,
        b"ps" | b"uptime" | b"version" | b"which" => CommandKind::NoInput,
        _ => match cmd.len() % 3 {
            0 => CommandKind::WithInput,
            1 => CommandKind::NoInput,
            _ => CommandKind::Unknown,
        },
    }
}

fn drain(r: &mut TextReader, open: bool, out: &mut Vec<TextEvent>) {
    // Each call consumes input or hands back an event; more events than
    // bytes (plus the few queued) means it is not making progress.
    let mut budget = 4 * r.buffered() + 16;
    while let Some(ev) = r.next(&lookup) {
        if let TextEvent::OpenReply { path, .. } = &ev {
            assert!(
                path.starts_with("/tmp/fz/"),
                "reply path {path:?} escapes reply_dir"
            );
            f::mi_reply_opened(r, open);
        }
        out.push(ev);
        budget -= 1;
        assert!(budget > 0, "reader keeps yielding without consuming");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let open = ctl & 1 == 0;

    let mut whole = TextReader::new("/tmp/fz/");
    whole.push(stream);
    let mut a = Vec::new();
    drain(&mut whole, open, &mut a);

    let mut bytewise = TextReader::new("/tmp/fz/");
    let mut b = Vec::new();
    for &byte in stream {
        bytewise.push(&[byte]);
        drain(&mut bytewise, open, &mut b);
    }
    assert_eq!(a, b, "events depend on how the stream was read");
    assert_eq!(whole.buffered(), bytewise.buffered());
});

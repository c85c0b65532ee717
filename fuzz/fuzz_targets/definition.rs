//! The PHLO definition parser, validator and compiler on arbitrary text (seeded with docs/examples).
//! Every input must end in a compiled PHLO or a list of problems; a compiled PHLO must have its Start.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match phlo_flow::compile_str(text) {
        Ok((phlo, warnings)) => {
            assert!(phlo.node(phlo.start).is_some(), "compiled without a Start");
            assert!(warnings.iter().all(|w| w.severity == phlo_flow::Severity::Warning));
        }
        Err(problems) => assert!(!problems.is_empty(), "rejected without a problem"),
    }
});

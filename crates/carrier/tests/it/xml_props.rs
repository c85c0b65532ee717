//! Properties of rendering: always well-formed, read back exactly (after sanitising), user text never
//! becomes markup.

use phlo_carrier::xml::*;
use proptest::prelude::*;

use crate::strategy::{response, text};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rendering_is_always_well_formed(r in response()) {
        let xml = r.render();
        prop_assert!(roxmltree::Document::parse(&xml).is_ok(), "{xml}");
        prop_assert!(xml.starts_with(XML_DECLARATION));
    }

    #[test]
    fn parse_reads_back_what_render_wrote(r in response()) {
        let xml = r.render();
        prop_assert_eq!(Response::parse(&xml), Ok(r.sanitized()), "{}", xml);
        prop_assert!(r.validate().is_ok());
    }

    #[test]
    fn sanitising_is_what_rendering_does(r in response()) {
        let clean = r.sanitized();
        prop_assert_eq!(clean.render(), r.render());
        prop_assert_eq!(clean.sanitized(), clean.clone());
    }

    #[test]
    fn render_checked_only_refuses_oversized_documents(r in response()) {
        match r.render_checked() {
            Ok(xml) => prop_assert!(xml.len() <= MAX_XML_BYTES),
            Err(e) => prop_assert!(matches!(e, XmlError::TooLarge { .. }), "{e}"),
        }
    }

    #[test]
    fn user_text_never_becomes_markup(t in text(), attr in text()) {
        let r = Response::new(vec![
            Element::Speak(Speak { text: t.clone(), voice: Some(attr.clone()), ..Speak::default() }),
            Element::redirect(t.clone()),
        ]);
        let xml = r.render();
        let doc = roxmltree::Document::parse(&xml).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let elements: Vec<&str> = doc.descendants().filter(|n| n.is_element()).map(|n| n.tag_name().name()).collect();
        prop_assert_eq!(elements, vec!["Response", "Speak", "Redirect"]);
        let speak = doc.descendants().find(|n| n.has_tag_name("Speak")).ok_or_else(|| TestCaseError::fail("no Speak"))?;
        let body: String = speak.children().filter_map(|n| n.text()).collect();
        prop_assert_eq!(body, sanitize(&t).into_owned());
        let clean_attr = sanitize(&attr);
        prop_assert_eq!(speak.attribute("voice"), Some(clean_attr.as_ref()));
    }
}

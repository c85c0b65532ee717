//! Integration tests of the PHLO model: one module per component, plus validation and properties.

mod support;

mod branch;
mod call_forward;
mod conference_bridge;
mod counter;
mod get_input;
mod hangup;
mod http_request;
mod initiate_call;
mod ivr_menu;
mod limits;
mod multi_party_call;
mod play_audio;
mod record_audio;
mod send_sms;
mod start;

mod docs;
mod properties;
mod validation;

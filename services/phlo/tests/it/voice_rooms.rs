//! Conference Bridge and Multiparty Call end to end.

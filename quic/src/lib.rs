//! QUIC and HTTP/3 termination into the shared proxy engine. Not implemented yet (issue 9).

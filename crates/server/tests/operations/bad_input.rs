//! Bad input from clients and peers: a clear error or a clean close, and the node
//! serves the next client.

//! Framing for the RESP port: requests in, [`Response`]s out, in RESP2 or RESP3.
//!
//! Parsing is `redis-protocol`'s, never ours. Clients send commands as arrays of bulk
//! strings in both protocol versions, so requests are always decoded with the RESP2
//! decoder; what changes with `HELLO 3` is how replies are *encoded*: a map is a real
//! map in RESP3 and a flat array in RESP2, null is `_` or `$-1`, and so on. Handlers
//! answer with [`Response`], a protocol-neutral reply, and [`RespCodec`] encodes it for
//! the connection's current version.
//!
//! The decoder refuses to buffer more than [`REQUEST_SIZE_MAX_BYTES`]: a client that
//! announces a gigantic bulk string, or never finishes one, gets an error and is
//! disconnected instead of growing the buffer without bound.

use bytes::{Bytes, BytesMut};
use redis_protocol::bytes_utils::Str;
use redis_protocol::codec::{Resp2, Resp3};
use redis_protocol::error::RedisProtocolError;
use redis_protocol::resp2::types::BytesFrame as Resp2Frame;
use redis_protocol::resp3::types::BytesFrame as Resp3Frame;
use replikv_core::limits::{KEY_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES};
use tokio_util::codec::{Decoder, Encoder};

/// Most bytes one request may occupy while it is being received: room for MSET of a few
/// maximum-size values.
pub const REQUEST_SIZE_MAX_BYTES: usize =
    4 * (VALUE_SIZE_MAX_BYTES + KEY_SIZE_MAX_BYTES) + 64 * 1024;

/// Most bytes one request may occupy while it is being received on a connection that
/// must still authenticate: AUTH and HELLO are small, and 10,000 unauthenticated
/// connections must not be able to make the node buffer gigabytes.
pub const UNAUTHENTICATED_REQUEST_SIZE_MAX_BYTES: usize = 64 * 1024;

/// Most arguments of one command.
pub const REQUEST_ARGUMENTS_MAX: usize = 16 * 1024;

/// A reply, before it is encoded for RESP2 or RESP3.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// `+OK`-style status.
    Simple(String),
    /// `-ERR ...`-style error; the text includes its prefix word (`ERR`, `WRONGTYPE`...).
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    /// The null reply (absent key).
    Null,
    Array(Vec<Response>),
    /// A map in RESP3; a flat array of keys and values in RESP2.
    Map(Vec<(Response, Response)>),
    /// A verbatim text (INFO) in RESP3; a bulk string in RESP2.
    Text(String),
}

impl Response {
    #[must_use]
    pub fn ok() -> Response {
        Response::Simple("OK".into())
    }

    #[must_use]
    pub fn error(text: impl Into<String>) -> Response {
        Response::Error(format!("ERR {}", text.into()))
    }

    #[must_use]
    pub fn bulk(bytes: impl Into<Bytes>) -> Response {
        Response::Bulk(bytes.into())
    }

    fn into_resp2(self) -> Resp2Frame {
        match self {
            Response::Simple(text) => Resp2Frame::SimpleString(Bytes::from(text)),
            Response::Error(text) => Resp2Frame::Error(Str::from(text)),
            Response::Integer(number) => Resp2Frame::Integer(number),
            Response::Bulk(bytes) => Resp2Frame::BulkString(bytes),
            Response::Text(text) => Resp2Frame::BulkString(Bytes::from(text)),
            Response::Null => Resp2Frame::Null,
            Response::Array(items) => {
                Resp2Frame::Array(items.into_iter().map(Response::into_resp2).collect())
            }
            Response::Map(pairs) => Resp2Frame::Array(
                pairs
                    .into_iter()
                    .flat_map(|(key, value)| [key.into_resp2(), value.into_resp2()])
                    .collect(),
            ),
        }
    }

    fn into_resp3(self) -> Resp3Frame {
        match self {
            Response::Simple(text) => Resp3Frame::SimpleString {
                data: Bytes::from(text),
                attributes: None,
            },
            Response::Error(text) => Resp3Frame::SimpleError {
                data: Str::from(text),
                attributes: None,
            },
            Response::Integer(number) => Resp3Frame::Number {
                data: number,
                attributes: None,
            },
            Response::Bulk(bytes) => Resp3Frame::BlobString {
                data: bytes,
                attributes: None,
            },
            Response::Text(text) => Resp3Frame::VerbatimString {
                data: Bytes::from(text),
                format: redis_protocol::resp3::types::VerbatimStringFormat::Text,
                attributes: None,
            },
            Response::Null => Resp3Frame::Null,
            Response::Array(items) => Resp3Frame::Array {
                data: items.into_iter().map(Response::into_resp3).collect(),
                attributes: None,
            },
            Response::Map(pairs) => Resp3Frame::Map {
                data: pairs
                    .into_iter()
                    .map(|(key, value)| (key.into_resp3(), value.into_resp3()))
                    .collect(),
                attributes: None,
            },
        }
    }
}

/// A decoded command: its arguments as bytes (the name first).
pub type Command = Vec<Bytes>;

/// Why a request could not be decoded; the connection answers it and closes.
#[derive(Debug)]
pub struct DecodeError(pub String);

impl From<std::io::Error> for DecodeError {
    fn from(error: std::io::Error) -> DecodeError {
        DecodeError(format!("i/o: {error}"))
    }
}

impl From<RedisProtocolError> for DecodeError {
    fn from(error: RedisProtocolError) -> DecodeError {
        DecodeError(format!("Protocol error: {}", error.details()))
    }
}

/// The RESP port's codec; see the module documentation.
#[derive(Debug, Default)]
pub struct RespCodec {
    decoder: Resp2,
    resp2: Resp2,
    resp3: Resp3,
    /// The protocol version replies are encoded with: 2 or 3.
    pub protocol: u8,
    /// Most bytes an incomplete request may occupy: [`REQUEST_SIZE_MAX_BYTES`], or
    /// [`UNAUTHENTICATED_REQUEST_SIZE_MAX_BYTES`] until the connection authenticated.
    pub request_size_max_bytes: usize,
}

impl RespCodec {
    #[must_use]
    pub fn new() -> RespCodec {
        RespCodec {
            protocol: 2,
            request_size_max_bytes: REQUEST_SIZE_MAX_BYTES,
            ..RespCodec::default()
        }
    }
}

impl Decoder for RespCodec {
    type Item = Command;
    type Error = DecodeError;

    fn decode(&mut self, source: &mut BytesMut) -> Result<Option<Command>, DecodeError> {
        let Some(frame) = self.decoder.decode(source)? else {
            let limit = self.request_size_max_bytes.min(REQUEST_SIZE_MAX_BYTES);
            if source.len() > limit {
                return Err(DecodeError(format!(
                    "Protocol error: request larger than {limit} bytes"
                )));
            }
            return Ok(None);
        };
        let Resp2Frame::Array(items) = frame else {
            return Err(DecodeError(
                "Protocol error: expected an array of bulk strings".into(),
            ));
        };
        if items.len() > REQUEST_ARGUMENTS_MAX {
            return Err(DecodeError(format!(
                "Protocol error: more than {REQUEST_ARGUMENTS_MAX} arguments"
            )));
        }
        let mut command = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Resp2Frame::BulkString(bytes) | Resp2Frame::SimpleString(bytes) => {
                    command.push(bytes);
                }
                Resp2Frame::Integer(number) => command.push(Bytes::from(number.to_string())),
                _ => {
                    return Err(DecodeError(
                        "Protocol error: command arguments must be bulk strings".into(),
                    ));
                }
            }
        }
        Ok(Some(command))
    }
}

impl Encoder<Response> for RespCodec {
    type Error = DecodeError;

    fn encode(
        &mut self,
        response: Response,
        destination: &mut BytesMut,
    ) -> Result<(), DecodeError> {
        if self.protocol == 3 {
            self.resp3.encode(response.into_resp3(), destination)?;
        } else {
            self.resp2.encode(response.into_resp2(), destination)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Vec<Command>, DecodeError> {
        let mut codec = RespCodec::new();
        let mut buffer = BytesMut::from(input);
        let mut commands = Vec::new();
        while let Some(command) = codec.decode(&mut buffer)? {
            commands.push(command);
        }
        Ok(commands)
    }

    fn encode(protocol: u8, response: Response) -> Vec<u8> {
        let mut codec = RespCodec::new();
        codec.protocol = protocol;
        let mut buffer = BytesMut::new();
        codec.encode(response, &mut buffer).unwrap();
        buffer.to_vec()
    }

    #[test]
    fn pipelined_commands_decode_in_order() {
        let commands = decode_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap();
        assert_eq!(commands.len(), 2);
        assert_eq!(commands[1], vec![Bytes::from("GET"), Bytes::from("k")]);
        assert!(
            decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\n").unwrap().is_empty(),
            "incomplete"
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for input in [
            &b"+PING\r\n"[..],
            b":12\r\n",
            b"*1\r\n*0\r\n",
            b"$x\r\n",
            b"*-5\r\n\r\n",
        ] {
            assert!(decode_all(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn an_announced_oversized_request_is_refused_before_it_is_buffered() {
        let mut input =
            format!("*2\r\n$3\r\nSET\r\n${}\r\n", REQUEST_SIZE_MAX_BYTES * 2).into_bytes();
        input.resize(REQUEST_SIZE_MAX_BYTES + 100, b'x');
        assert!(decode_all(&input).is_err());
    }

    #[test]
    fn replies_follow_the_protocol_version() {
        assert_eq!(encode(2, Response::Null), b"$-1\r\n");
        assert_eq!(encode(3, Response::Null), b"_\r\n");
        let map = Response::Map(vec![(Response::bulk("a"), Response::Integer(1))]);
        assert_eq!(encode(2, map.clone()), b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(encode(3, map), b"%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(encode(2, Response::error("boom")), b"-ERR boom\r\n");
    }
}

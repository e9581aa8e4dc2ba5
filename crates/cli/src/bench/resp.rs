//! A minimal RESP client for the benchmark and the live test: one command at a time over
//! one TCP connection.
//!
//! The benchmark needs one thing from a client: send a command, wait for its reply,
//! measure the time between. A general client library adds pools, retries and type
//! conversions whose cost would be measured along with the server's, so this one is
//! deliberately small: commands are encoded as RESP arrays of bulk strings into a
//! reused buffer and written in one call; a reply is read from a buffered reader and
//! parsed just far enough to classify it (simple string, integer, bulk or null is a
//! success, an error reply is a failure with its message). Anything else a GET or SET
//! cannot produce (arrays, unknown type bytes) or anything over the size limits is a
//! protocol error, never a panic: the bytes come from the network. It speaks RESP2,
//! which both replikv and Redis answer by default. `replikv test` needs the reply's
//! content too (what a GET read, whether a CAS swapped), so [`read_value`] parses a
//! reply into a [`ReplyValue`] and [`read_reply`] is its classification.

use std::io;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Longest reply header line (type byte, length, CRLF) accepted.
const LINE_MAX_BYTES: usize = 64 * 1024;
/// Largest bulk reply accepted: a value plus room.
const BULK_MAX_BYTES: usize = replikv_core::limits::VALUE_SIZE_MAX_BYTES + 64 * 1024;

/// How the server answered one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A simple string, integer, bulk string or null: the command was served.
    Ok,
    /// An error reply (`-ERR ...`): the command failed; the message says why.
    Error(String),
}

/// A reply with its content (nested arrays are not accepted: no command used here
/// answers one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyValue {
    /// `+text`.
    Simple(String),
    /// `:number`.
    Integer(i64),
    /// `$length` and the bytes, or `$-1` (absent).
    Bulk(Option<Vec<u8>>),
    /// `-PREFIX message`.
    Error(String),
}

/// One connection.
#[derive(Debug)]
pub struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    buffer: Vec<u8>,
}

impl Connection {
    /// Connects to `address` (`host:port`), authenticating with the client password
    /// when `REPLIKV_CLIENT_PASSWORD` is set.
    pub async fn connect(address: &str) -> io::Result<Connection> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        let mut connection = Connection {
            reader: BufReader::new(read),
            writer,
            buffer: Vec::new(),
        };
        if let Some(password) = crate::password::client_password()
            && let Reply::Error(error) = connection.command(&[b"AUTH", password.as_bytes()]).await?
        {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("AUTH refused: {error}"),
            ));
        }
        Ok(connection)
    }

    /// Sends one command and reads its reply.
    pub async fn command(&mut self, arguments: &[&[u8]]) -> io::Result<Reply> {
        self.buffer.clear();
        encode(arguments, &mut self.buffer);
        self.writer.write_all(&self.buffer).await?;
        read_reply(&mut self.reader).await
    }

    /// Sends one command and reads its reply with its content.
    pub async fn request(&mut self, arguments: &[&[u8]]) -> io::Result<ReplyValue> {
        self.buffer.clear();
        encode(arguments, &mut self.buffer);
        self.writer.write_all(&self.buffer).await?;
        read_value(&mut self.reader).await
    }
}

/// Appends the RESP array of bulk strings for `arguments` to `buffer`.
pub fn encode(arguments: &[&[u8]], buffer: &mut Vec<u8>) {
    buffer.extend_from_slice(format!("*{}\r\n", arguments.len()).as_bytes());
    for argument in arguments {
        buffer.extend_from_slice(format!("${}\r\n", argument.len()).as_bytes());
        buffer.extend_from_slice(argument);
        buffer.extend_from_slice(b"\r\n");
    }
}

fn protocol_error(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Reads one reply line without its CRLF, bounded by `LINE_MAX_BYTES`.
async fn read_line(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut limited = (&mut *reader).take(LINE_MAX_BYTES as u64);
    limited.read_until(b'\n', &mut line).await?;
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(protocol_error("reply line too long or not CRLF-terminated"));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

/// Reads and classifies one reply (see the module documentation).
pub async fn read_reply(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<Reply> {
    Ok(match read_value(reader).await? {
        ReplyValue::Error(message) => Reply::Error(message),
        ReplyValue::Simple(_) | ReplyValue::Integer(_) | ReplyValue::Bulk(_) => Reply::Ok,
    })
}

/// Reads one reply with its content, bounded (see the module documentation).
pub async fn read_value(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<ReplyValue> {
    let line = read_line(reader).await?;
    let (kind, rest) = line
        .split_first()
        .ok_or_else(|| protocol_error("empty reply"))?;
    let text = || String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(ReplyValue::Simple(text())),
        b':' => text()
            .parse()
            .map(ReplyValue::Integer)
            .map_err(|_| protocol_error("bad integer reply")),
        b'-' => Ok(ReplyValue::Error(text())),
        b'$' => {
            let length: i64 = std::str::from_utf8(rest)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| protocol_error("bad bulk length"))?;
            if length < 0 {
                return Ok(ReplyValue::Bulk(None));
            }
            let length = usize::try_from(length)
                .ok()
                .filter(|length| *length <= BULK_MAX_BYTES)
                .ok_or_else(|| protocol_error("bulk reply over the size limit"))?;
            let mut body = vec![0; length + 2];
            reader.read_exact(&mut body).await?;
            if !body.ends_with(b"\r\n") {
                return Err(protocol_error("bulk reply not CRLF-terminated"));
            }
            body.truncate(length);
            Ok(ReplyValue::Bulk(Some(body)))
        }
        other => Err(protocol_error(format!(
            "unexpected reply type {:?}",
            char::from(*other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> io::Result<Reply> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut reader = BufReader::new(bytes);
            read_reply(&mut reader).await
        })
    }

    #[test]
    fn encodes_commands_as_arrays_of_bulk_strings() {
        let mut buffer = Vec::new();
        encode(&[b"SET", b"k", b"hello"], &mut buffer);
        assert_eq!(buffer, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n");
    }

    #[test]
    fn classifies_replies() {
        let cases: [(&[u8], Reply); 6] = [
            (b"+OK\r\n", Reply::Ok),
            (b":1\r\n", Reply::Ok),
            (b"$-1\r\n", Reply::Ok),
            (b"$5\r\nhello\r\n", Reply::Ok),
            (b"$0\r\n\r\n", Reply::Ok),
            (b"-ERR not now\r\n", Reply::Error("ERR not now".into())),
        ];
        for (bytes, expected) in cases {
            assert_eq!(parse(bytes).unwrap(), expected, "{bytes:?}");
        }
    }

    #[test]
    fn parses_reply_contents() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let cases: [(&[u8], ReplyValue); 5] = [
            (b"+OK\r\n", ReplyValue::Simple("OK".into())),
            (b":-1\r\n", ReplyValue::Integer(-1)),
            (b"$-1\r\n", ReplyValue::Bulk(None)),
            (
                b"$5\r\nhello\r\n",
                ReplyValue::Bulk(Some(b"hello".to_vec())),
            ),
            (
                b"-UNKNOWN late\r\n",
                ReplyValue::Error("UNKNOWN late".into()),
            ),
        ];
        for (bytes, expected) in cases {
            let parsed = runtime.block_on(read_value(&mut BufReader::new(bytes)));
            assert_eq!(parsed.unwrap(), expected, "{bytes:?}");
        }
        assert!(
            runtime
                .block_on(read_value(&mut BufReader::new(&b":x\r\n"[..])))
                .is_err()
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let cases: [&[u8]; 8] = [
            b"",
            b"\r\n",
            b"+OK",
            b"*1\r\n$1\r\na\r\n",
            b"$abc\r\n",
            b"$5\r\nhi\r\n",
            b"$5\r\nhelloXY",
            b"$99999999999\r\n",
        ];
        for bytes in cases {
            assert!(parse(bytes).is_err(), "{bytes:?}");
        }
        let long_line = [b"+".as_slice(), &vec![b'a'; LINE_MAX_BYTES], b"\r\n"].concat();
        assert!(parse(&long_line).is_err());
    }
}

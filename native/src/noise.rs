//! The encrypted P2P transport (DESIGN §8; docs/p2p.md "Transport"): the Noise protocol
//! `Noise_XX_25519_ChaChaPoly_SHA256` through the `snow` crate, and the framing of Noise messages
//! on a TCP stream.
//!
//! On the wire every Noise message (the three handshake messages, then every transport message)
//! is preceded by its length as a big-endian u16, as the Noise specification suggests (§13,
//! "Application responsibilities") and libp2p-noise does. A transport message carries at most
//! [`MAX_PLAINTEXT`] bytes of plaintext ([`MAX_MESSAGE_LEN`] = 65,535 bytes with the 16-byte
//! tag, the specification's limit); [`Transport::encrypt`] splits a longer plaintext into
//! consecutive messages of that size. The plaintext is a byte stream (the P2P frames, decoded
//! above this layer), so a frame may span messages and a message may hold many frames.
//!
//! Nonces are snow's: one 64-bit counter per direction, never reused; a counter that would wrap
//! makes `encrypt`/`decrypt` fail and the connection is dropped (2^64 messages never happen).
//! Identity (which Ed25519 key owns the static key) is not this module's business: the
//! handshake payloads carry it and Python checks them (timecoin/p2p/handshake.py).

use curve25519_dalek::montgomery::MontgomeryPoint;
use snow::{Builder, HandshakeState, TransportState};

/// The Noise protocol name (Noise specification §8): the XX pattern (both static keys sent,
/// encrypted, mutually authenticated), X25519, ChaCha20-Poly1305 and SHA-256.
pub const PROTOCOL_NAME: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
/// Largest Noise message, handshake or transport (Noise specification §3).
pub const MAX_MESSAGE_LEN: usize = 65_535;
/// Bytes of the Poly1305 tag every encrypted payload carries.
pub const TAG_LEN: usize = 16;
/// Largest plaintext of one transport message.
pub const MAX_PLAINTEXT: usize = MAX_MESSAGE_LEN - TAG_LEN;
/// Bytes of the length prefix before each Noise message on the stream.
pub const LENGTH_PREFIX_LEN: usize = 2;
/// Bytes of an X25519 key.
pub const KEY_LEN: usize = 32;

/// What can go wrong; the message is for logs and the peer's close reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoiseError(pub String);

impl std::fmt::Display for NoiseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoiseError {}

fn err(what: &str, e: snow::Error) -> NoiseError {
    NoiseError(format!("{what}: {e}"))
}

/// The X25519 public key of a 32-byte static secret (RFC 7748 clamping, as snow applies it).
pub fn public_key(secret: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    MontgomeryPoint::mul_base_clamped(*secret).to_bytes()
}

/// One side of a handshake in progress.
pub struct Handshake {
    state: HandshakeState,
}

impl Handshake {
    /// A handshake as initiator (the side that dialed) or responder, with our static secret and
    /// the prologue both sides must agree on (a different prologue fails the second message).
    /// `ephemeral` fixes the ephemeral secret: for the published test vectors only.
    pub fn new(
        initiator: bool,
        prologue: &[u8],
        static_secret: &[u8; KEY_LEN],
        ephemeral: Option<&[u8; KEY_LEN]>,
    ) -> Result<Self, NoiseError> {
        let params = PROTOCOL_NAME.parse().map_err(|e| err("protocol name", e))?;
        let mut builder = Builder::new(params)
            .local_private_key(static_secret)
            .map_err(|e| err("static key", e))?
            .prologue(prologue)
            .map_err(|e| err("prologue", e))?;
        if let Some(e) = ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(e);
        }
        let state = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .map_err(|e| err("handshake", e))?;
        Ok(Handshake { state })
    }

    /// The next handshake message carrying `payload` (encrypted from the second message on).
    pub fn write_message(&mut self, payload: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let mut out = vec![0u8; MAX_MESSAGE_LEN];
        let n = self
            .state
            .write_message(payload, &mut out)
            .map_err(|e| err("handshake write", e))?;
        out.truncate(n);
        Ok(out)
    }

    /// The payload of the peer's next handshake message; an error if it does not authenticate
    /// (a different prologue, a tampered message) or is out of turn.
    pub fn read_message(&mut self, message: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let mut out = vec![0u8; MAX_MESSAGE_LEN];
        let n = self
            .state
            .read_message(message, &mut out)
            .map_err(|e| err("handshake read", e))?;
        out.truncate(n);
        Ok(out)
    }

    pub fn is_finished(&self) -> bool {
        self.state.is_handshake_finished()
    }

    pub fn is_initiator(&self) -> bool {
        self.state.is_initiator()
    }

    /// The peer's static public key, once its handshake message carrying it was read.
    pub fn remote_static(&self) -> Option<[u8; KEY_LEN]> {
        self.state
            .get_remote_static()
            .and_then(|k| k.try_into().ok())
    }

    /// The handshake hash `h` (Noise specification §11.2): unique to this session.
    pub fn handshake_hash(&self) -> Vec<u8> {
        self.state.get_handshake_hash().to_vec()
    }

    /// The transport state of a finished handshake (an error before it is finished).
    pub fn into_transport(self) -> Result<Transport, NoiseError> {
        let remote = self.remote_static();
        let hash = self.handshake_hash();
        let state = self
            .state
            .into_transport_mode()
            .map_err(|e| err("transport", e))?;
        Ok(Transport {
            state,
            inbound: Vec::new(),
            remote_static: remote,
            handshake_hash: hash,
        })
    }
}

/// Both directions of an established session: encryption of our byte stream into
/// length-prefixed transport messages, decryption of theirs.
pub struct Transport {
    state: TransportState,
    /// Bytes of a transport message not yet complete (at most prefix + 65,535).
    inbound: Vec<u8>,
    remote_static: Option<[u8; KEY_LEN]>,
    handshake_hash: Vec<u8>,
}

impl Transport {
    pub fn remote_static(&self) -> Option<[u8; KEY_LEN]> {
        self.remote_static
    }

    pub fn handshake_hash(&self) -> &[u8] {
        &self.handshake_hash
    }

    /// Bytes held of a partial incoming message.
    pub fn buffered(&self) -> usize {
        self.inbound.len()
    }

    /// Messages sent and received so far (the next nonces).
    pub fn nonces(&self) -> (u64, u64) {
        (self.state.sending_nonce(), self.state.receiving_nonce())
    }

    /// `plaintext` as length-prefixed transport messages of at most [`MAX_PLAINTEXT`] bytes of
    /// plaintext each (one message for an empty plaintext is not sent: empty in, empty out).
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let chunks = plaintext.len().div_ceil(MAX_PLAINTEXT);
        let mut out = vec![0u8; plaintext.len() + chunks * (LENGTH_PREFIX_LEN + TAG_LEN)];
        let mut at = 0;
        for chunk in plaintext.chunks(MAX_PLAINTEXT) {
            let body =
                &mut out[at + LENGTH_PREFIX_LEN..at + LENGTH_PREFIX_LEN + chunk.len() + TAG_LEN];
            let n = self
                .state
                .write_message(chunk, body)
                .map_err(|e| err("encrypt", e))?;
            debug_assert_eq!(n, chunk.len() + TAG_LEN);
            let len = u16::try_from(n).expect("a message is at most 65,535 bytes");
            out[at..at + LENGTH_PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
            at += LENGTH_PREFIX_LEN + n;
        }
        debug_assert_eq!(at, out.len());
        Ok(out)
    }

    /// The plaintext of every transport message completed by `data` (appended to what an
    /// earlier call left), concatenated; a trailing partial message is kept for the next call.
    /// An error if any message fails to authenticate (or is shorter than a tag): nothing of
    /// `data` is returned then, and the session is unusable (the caller drops the connection).
    pub fn decrypt(&mut self, data: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let mut out = Vec::with_capacity(data.len());
        let mut pos = 0;
        if !self.inbound.is_empty() {
            // Complete the partial message first, taking only the bytes it still needs.
            let mut pending = std::mem::take(&mut self.inbound);
            if pending.len() < LENGTH_PREFIX_LEN {
                let take = (LENGTH_PREFIX_LEN - pending.len()).min(data.len());
                pending.extend_from_slice(&data[..take]);
                pos = take;
            }
            if pending.len() < LENGTH_PREFIX_LEN {
                self.inbound = pending;
                return Ok(out);
            }
            let need =
                LENGTH_PREFIX_LEN + usize::from(u16::from_be_bytes([pending[0], pending[1]]));
            let take = (need - pending.len()).min(data.len() - pos);
            pending.extend_from_slice(&data[pos..pos + take]);
            pos += take;
            if pending.len() < need {
                self.inbound = pending;
                return Ok(out);
            }
            self.open(&pending[LENGTH_PREFIX_LEN..], &mut out)?;
        }
        while data.len() - pos >= LENGTH_PREFIX_LEN {
            let len = usize::from(u16::from_be_bytes([data[pos], data[pos + 1]]));
            let end = pos + LENGTH_PREFIX_LEN + len;
            if end > data.len() {
                break;
            }
            self.open(&data[pos + LENGTH_PREFIX_LEN..end], &mut out)?;
            pos = end;
        }
        self.inbound.extend_from_slice(&data[pos..]);
        Ok(out)
    }

    fn open(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<(), NoiseError> {
        if message.len() < TAG_LEN {
            return Err(NoiseError(format!(
                "decrypt: a transport message of {} bytes is shorter than its tag",
                message.len()
            )));
        }
        let at = out.len();
        out.resize(at + message.len() - TAG_LEN, 0);
        let n = self
            .state
            .read_message(message, &mut out[at..])
            .map_err(|e| err("decrypt", e))?;
        out.truncate(at + n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Transport, Transport) {
        let (a_secret, b_secret) = ([1u8; KEY_LEN], [2u8; KEY_LEN]);
        let mut a = Handshake::new(true, b"prologue", &a_secret, None).unwrap();
        let mut b = Handshake::new(false, b"prologue", &b_secret, None).unwrap();
        let m1 = a.write_message(b"").unwrap();
        assert_eq!(b.read_message(&m1).unwrap(), b"");
        let m2 = b.write_message(b"responder").unwrap();
        assert_eq!(a.read_message(&m2).unwrap(), b"responder");
        let m3 = a.write_message(b"initiator").unwrap();
        assert_eq!(b.read_message(&m3).unwrap(), b"initiator");
        assert!(a.is_finished() && b.is_finished());
        assert_eq!(a.remote_static(), Some(public_key(&b_secret)));
        assert_eq!(b.remote_static(), Some(public_key(&a_secret)));
        assert_eq!(a.handshake_hash(), b.handshake_hash());
        (a.into_transport().unwrap(), b.into_transport().unwrap())
    }

    #[test]
    fn round_trip_split_and_byte_by_byte() {
        let (mut a, mut b) = pair();
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let wire = a.encrypt(&plain).unwrap();
        // 200,000 bytes need four messages of at most 65,519 bytes.
        assert_eq!(wire.len(), plain.len() + 4 * (LENGTH_PREFIX_LEN + TAG_LEN));
        assert_eq!(a.nonces().0, 4);
        let mut got = Vec::new();
        for byte in &wire {
            got.extend(b.decrypt(std::slice::from_ref(byte)).unwrap());
        }
        assert_eq!(got, plain);
        assert_eq!(b.buffered(), 0);
        // And in one call, the other way.
        let back = b.encrypt(b"hello").unwrap();
        assert_eq!(a.decrypt(&back).unwrap(), b"hello");
        assert!(a.encrypt(b"").unwrap().is_empty());
    }

    #[test]
    fn a_flipped_byte_fails_and_returns_nothing() {
        let (mut a, mut b) = pair();
        let mut wire = a.encrypt(b"first").unwrap();
        wire.extend(a.encrypt(b"second").unwrap());
        let last = wire.len() - 1;
        wire[last] ^= 1;
        assert!(b.decrypt(&wire).is_err());
    }

    #[test]
    fn a_different_prologue_fails_the_handshake() {
        let mut a = Handshake::new(true, b"network A", &[1u8; KEY_LEN], None).unwrap();
        let mut b = Handshake::new(false, b"network B", &[2u8; KEY_LEN], None).unwrap();
        b.read_message(&a.write_message(b"").unwrap()).unwrap();
        let m2 = b.write_message(b"").unwrap();
        assert!(a.read_message(&m2).is_err());
    }

    #[test]
    fn a_message_shorter_than_its_tag_is_an_error() {
        let (_, mut b) = pair();
        assert!(b.decrypt(&[0, 3, 1, 2, 3]).is_err());
    }
}

//! Ed25519 signing and the one verification rule used on every path.
//!
//! The rule ("strict") is `ed25519-dalek`'s `verify_strict`: canonical `S`,
//! canonical `R` encoding, neither `R` nor the public key of small order, and
//! the cofactorless equation. Registered keys must additionally be
//! torsion-free (checked by [`check_registrable_key`] when a party is added),
//! so for registered keys strict verification is fully deterministic.
//!
//! [`verify_batch`] is an accelerator only: it screens every signature for the
//! properties strict verification demands that a batch equation would not
//! notice (encodings, small order, torsion in `R`), runs one batch equation,
//! and falls back to strict verification of each signature when the batch
//! fails. Its verdict for each item is therefore identical to
//! [`verify_strict`]'s.

use crate::hash::{Bytes, Sig64};
use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// A 32-byte Ed25519 public key as stored in the chain config.
pub type PublicKey = Bytes<32>;

/// Why a signature or key was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum SigError {
    /// The public key bytes are not a valid point.
    #[error("public key is not a valid Ed25519 point")]
    BadKey,
    /// The key is of small order or has a torsion component.
    #[error("public key is weak (small order or not in the prime-order subgroup)")]
    WeakKey,
    /// The signature does not verify under the strict rule.
    #[error("signature does not verify")]
    BadSignature,
}

/// A party's Ed25519 signing key. Never printed.
pub struct Keypair(SigningKey);

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair(public={})", self.public())
    }
}

impl Keypair {
    /// Fresh key from the OS random generator.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        Keypair(SigningKey::from_bytes(&seed))
    }

    /// Key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Keypair(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed (for writing key files).
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Public key bytes.
    pub fn public(&self) -> PublicKey {
        Bytes(self.0.verifying_key().to_bytes())
    }

    /// Sign `msg`.
    pub fn sign(&self, msg: &[u8]) -> Sig64 {
        Bytes(self.0.sign(msg).to_bytes())
    }
}

/// A key may be registered only if it is a valid point in the prime-order
/// subgroup (so the cofactorless strict rule has one answer).
pub fn check_registrable_key(key: &PublicKey) -> Result<(), SigError> {
    let vk = VerifyingKey::from_bytes(&key.0).map_err(|_| SigError::BadKey)?;
    if vk.is_weak() || !vk.to_edwards().is_torsion_free() {
        return Err(SigError::WeakKey);
    }
    Ok(())
}

/// Decompressed keys, by encoding, with whether each is weak (of small
/// order): a handful of parties sign everything, and decompressing a key
/// costs about a fifth of a verification. Decompression is a pure function of
/// the bytes, so a cached key verifies exactly as a fresh one; invalid
/// encodings are never cached. Bounded (emptied when full).
static KEYS: std::sync::Mutex<std::collections::BTreeMap<[u8; 32], (VerifyingKey, bool)>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());
const KEYS_CAPACITY: usize = 4096;

fn cached_key(key: &PublicKey) -> Result<(VerifyingKey, bool), SigError> {
    let mut cache = KEYS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = cache.get(&key.0) {
        return Ok(*k);
    }
    let vk = VerifyingKey::from_bytes(&key.0).map_err(|_| SigError::BadKey)?;
    if cache.len() >= KEYS_CAPACITY {
        cache.clear();
    }
    let entry = (vk, vk.is_weak());
    cache.insert(key.0, entry);
    Ok(entry)
}

fn verifying_key(key: &PublicKey) -> Result<VerifyingKey, SigError> {
    cached_key(key).map(|(vk, _)| vk)
}

/// The canonical encodings of the eight points of small order.
static SMALL_ORDER_ENCODINGS: std::sync::LazyLock<[[u8; 32]; 8]> =
    std::sync::LazyLock::new(|| curve25519_dalek::constants::EIGHT_TORSION.map(|p| p.compress().0));

/// The one verification rule: exactly `ed25519-dalek`'s `verify_strict`,
/// computed without decompressing `R`.
///
/// `verify_strict` decompresses `R` only to reject small-order points, then
/// accepts iff `S` is canonical and `compress([S]B - [k]A)` equals the `R`
/// bytes, which is also the whole of the plain `verify`. When the bytes are
/// equal they are the canonical encoding of a point, so that point is of
/// small order exactly when the bytes are one of the eight canonical
/// small-order encodings: the byte comparison replaces the decompression (a
/// field exponentiation). The key's small-order check is cached with the key.
/// `tests::fast_rule_matches_dalek_verify_strict` compares the two verdicts.
pub fn verify_strict(key: &PublicKey, msg: &[u8], sig: &Sig64) -> Result<(), SigError> {
    use ed25519_dalek::Verifier;
    let (vk, weak) = cached_key(key)?;
    if weak || SMALL_ORDER_ENCODINGS.iter().any(|e| sig.0[..32] == e[..]) {
        return Err(SigError::BadSignature);
    }
    vk.verify(msg, &Signature::from_bytes(&sig.0))
        .map_err(|_| SigError::BadSignature)
}

/// Signatures this process has already verified under the strict rule,
/// remembered by a hash of (key, message, signature). Admission records the
/// signatures it checked, so applying the same transactions later does not
/// verify them a second time on this node. The answer for a remembered
/// triple is the strict rule's answer (it is deterministic), so a node using
/// the cache builds exactly the block a node without it builds. Bounded: the
/// oldest entries are forgotten first.
#[derive(Debug)]
pub struct VerifiedSignatures {
    inner: std::sync::Mutex<VerifiedInner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct VerifiedInner {
    set: std::collections::BTreeSet<[u8; 32]>,
    order: std::collections::VecDeque<[u8; 32]>,
}

fn triple_digest(key: &PublicKey, msg: &[u8], sig: &Sig64) -> [u8; 32] {
    crate::hash::tagged_hash(b"customs-ledger/v1/verified\0", &[&key.0, &sig.0, msg]).0
}

impl VerifiedSignatures {
    /// A cache of at most `capacity` signatures.
    pub fn new(capacity: usize) -> Self {
        VerifiedSignatures {
            inner: std::sync::Mutex::new(VerifiedInner::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VerifiedInner> {
        // A set of digests has no invariant a panic could break half-way.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`verify_strict`], answering from the cache when this triple was
    /// verified before and remembering it when it verifies now.
    pub fn verify(&self, key: &PublicKey, msg: &[u8], sig: &Sig64) -> Result<(), SigError> {
        let d = triple_digest(key, msg, sig);
        if self.lock().set.contains(&d) {
            return Ok(());
        }
        verify_strict(key, msg, sig)?;
        let mut g = self.lock();
        if g.set.insert(d) {
            g.order.push_back(d);
            while g.order.len() > self.capacity {
                if let Some(old) = g.order.pop_front() {
                    g.set.remove(&old);
                }
            }
        }
        Ok(())
    }

    /// Signatures remembered now.
    pub fn len(&self) -> usize {
        self.lock().set.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One item of a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    /// Signer's public key.
    pub key: &'a PublicKey,
    /// Signed message.
    pub msg: &'a [u8],
    /// Signature.
    pub sig: &'a Sig64,
}

/// Screen a signature for what strict verification requires beyond the
/// (cofactorless) batch equation: canonical `S` and `R` encodings, `R` and
/// the key not of small order, and `R` torsion-free (a torsion component in
/// `R` can cancel in a random linear combination, never in the strict check).
fn screen(item: &BatchItem<'_>) -> Option<(VerifyingKey, Signature)> {
    let vk = verifying_key(item.key).ok()?;
    if vk.is_weak() || !vk.to_edwards().is_torsion_free() {
        return None;
    }
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(item.sig.0.get(..32)?);
    s.copy_from_slice(item.sig.0.get(32..)?);
    // Canonical S (strict rejects S >= l).
    Option::<curve25519_dalek::Scalar>::from(curve25519_dalek::Scalar::from_canonical_bytes(s))?;
    let r_point = CompressedEdwardsY(r).decompress()?;
    if r_point.compress().0 != r || r_point.is_small_order() || !r_point.is_torsion_free() {
        return None;
    }
    Some((vk, Signature::from_bytes(&item.sig.0)))
}

/// Verify many signatures; the verdict for each item equals
/// [`verify_strict`]'s. Returns one result per item, in order.
pub fn verify_batch(items: &[BatchItem<'_>]) -> Vec<Result<(), SigError>> {
    let mut out: Vec<Result<(), SigError>> = vec![Ok(()); items.len()];
    let mut msgs = Vec::with_capacity(items.len());
    let mut sigs = Vec::with_capacity(items.len());
    let mut keys = Vec::with_capacity(items.len());
    let mut idx = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match screen(item) {
            Some((vk, sig)) => {
                msgs.push(item.msg);
                sigs.push(sig);
                keys.push(vk);
                idx.push(i);
            }
            None => {
                // Let the strict rule name the failure (bad key vs bad signature).
                out[i] = match verify_strict(item.key, item.msg, item.sig) {
                    Ok(()) => Err(SigError::BadSignature),
                    Err(e) => Err(e),
                };
            }
        }
    }
    if idx.is_empty() {
        return out;
    }
    if ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_err() {
        for &i in &idx {
            out[i] = verify_strict(items[i].key, items[i].msg, items[i].sig);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;

    fn kp(n: u8) -> Keypair {
        Keypair::from_seed(&[n; 32])
    }

    fn strict_verdicts(items: &[BatchItem<'_>]) -> Vec<Result<(), SigError>> {
        items
            .iter()
            .map(|i| verify_strict(i.key, i.msg, i.sig))
            .collect()
    }

    #[test]
    fn verified_cache_answers_like_strict_and_stays_bounded() {
        let cache = VerifiedSignatures::new(2);
        let k = kp(1);
        let sig = k.sign(b"m");
        assert_eq!(cache.verify(&k.public(), b"m", &sig), Ok(()));
        assert_eq!(cache.len(), 1);
        // Remembered: same answer. Any other message, key or signature is
        // verified afresh (and fails).
        assert_eq!(cache.verify(&k.public(), b"m", &sig), Ok(()));
        assert_eq!(
            cache.verify(&k.public(), b"n", &sig),
            Err(SigError::BadSignature)
        );
        assert_eq!(
            cache.verify(&kp(2).public(), b"m", &sig),
            Err(SigError::BadSignature)
        );
        let mut bad = sig;
        bad.0[0] ^= 1;
        assert!(cache.verify(&k.public(), b"m", &bad).is_err());
        assert_eq!(cache.len(), 1, "failures are not remembered");
        for m in [b"a", b"b", b"c"] {
            cache.verify(&k.public(), m, &k.sign(m)).unwrap();
        }
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn sign_verify_and_registrable() {
        let k = kp(1);
        let sig = k.sign(b"m");
        assert_eq!(verify_strict(&k.public(), b"m", &sig), Ok(()));
        assert_eq!(
            verify_strict(&k.public(), b"n", &sig),
            Err(SigError::BadSignature)
        );
        assert_eq!(check_registrable_key(&k.public()), Ok(()));
    }

    #[test]
    fn small_order_and_mixed_order_keys_are_not_registrable() {
        for t in EIGHT_TORSION.iter() {
            let key = Bytes(t.compress().0);
            assert_ne!(check_registrable_key(&key), Ok(()));
        }
        let mixed = kp(3).0.verifying_key().to_edwards() + EIGHT_TORSION[1];
        assert_eq!(
            check_registrable_key(&Bytes(mixed.compress().0)),
            Err(SigError::WeakKey)
        );
    }

    /// Builds a corpus of valid, malleated and adversarial signatures and
    /// checks the batch path agrees with the strict path item by item, in
    /// batches of every composition.
    #[test]
    fn batch_and_strict_verdicts_are_identical() {
        let keys: Vec<Keypair> = (1..=6).map(kp).collect();
        let msgs: Vec<Vec<u8>> = (0..6)
            .map(|i| format!("message {i}").into_bytes())
            .collect();
        let mut cases: Vec<(PublicKey, Vec<u8>, Sig64)> = Vec::new();
        for (k, m) in keys.iter().zip(&msgs) {
            cases.push((k.public(), m.clone(), k.sign(m)));
        }
        // Malleated S: S + l (non-canonical scalar).
        let (pk, m, s) = cases[0].clone();
        let mut mal = s;
        let l: [u8; 32] =
            hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
                .unwrap()
                .try_into()
                .unwrap();
        let mut carry = 0u16;
        for (i, li) in l.iter().enumerate() {
            let v = u16::from(mal.0[32 + i]) + u16::from(*li) + carry;
            mal.0[32 + i] = (v & 0xff) as u8;
            carry = v >> 8;
        }
        cases.push((pk, m.clone(), mal));
        // Flipped bit in R and in S, wrong message, wrong key.
        let mut flip_r = s;
        flip_r.0[0] ^= 1;
        cases.push((pk, m.clone(), flip_r));
        let mut flip_s = s;
        flip_s.0[40] ^= 1;
        cases.push((pk, m.clone(), flip_s));
        cases.push((pk, b"other".to_vec(), s));
        cases.push((keys[1].public(), m.clone(), s));
        // Small-order key with the identity "signature" (R = identity, S = 0)
        // that the cofactored or naive equations would accept for any message.
        for t in EIGHT_TORSION.iter() {
            let key = Bytes(t.compress().0);
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(
                &curve25519_dalek::edwards::EdwardsPoint::default()
                    .compress()
                    .0,
            );
            cases.push((key, b"anything".to_vec(), Bytes(sig)));
            // and R = the torsion point itself
            let mut sig2 = [0u8; 64];
            sig2[..32].copy_from_slice(&t.compress().0);
            cases.push((key, b"anything".to_vec(), Bytes(sig2)));
        }
        // Mixed-order R: a valid signature's R plus a torsion point cannot be
        // produced without the key, but we construct one with the secret
        // scalar to exercise the screen: R' = R + T, S unchanged.
        let r_point = CompressedEdwardsY(s.0[..32].try_into().unwrap())
            .decompress()
            .unwrap();
        for t in EIGHT_TORSION.iter().skip(1) {
            let mut sig = s;
            sig.0[..32].copy_from_slice(&(r_point + t).compress().0);
            cases.push((pk, m.clone(), sig));
        }
        // Non-canonical key encoding (y >= p).
        let mut noncanon = [0xffu8; 32];
        noncanon[31] = 0x7f;
        cases.push((Bytes(noncanon), m.clone(), s));

        let items: Vec<BatchItem<'_>> = cases
            .iter()
            .map(|(k, m, s)| BatchItem {
                key: k,
                msg: m,
                sig: s,
            })
            .collect();
        let expected = strict_verdicts(&items);
        assert_eq!(verify_batch(&items), expected);
        // Valid ones really are valid, and many are invalid.
        assert_eq!(expected.iter().filter(|r| r.is_ok()).count(), 6);
        // Every window and every single item agrees too.
        for w in 1..items.len() {
            for chunk in items.chunks(w) {
                assert_eq!(verify_batch(chunk), strict_verdicts(chunk));
            }
        }
        // All-valid batch passes through the fast path.
        assert!(verify_batch(&items[..6]).iter().all(|r| r.is_ok()));
    }

    /// `ed25519-dalek`'s own `verify_strict`, the oracle for the rule above.
    fn dalek_strict(key: &PublicKey, msg: &[u8], sig: &Sig64) -> Result<(), SigError> {
        let vk = VerifyingKey::from_bytes(&key.0).map_err(|_| SigError::BadKey)?;
        vk.verify_strict(msg, &Signature::from_bytes(&sig.0))
            .map_err(|_| SigError::BadSignature)
    }

    /// `R || S` with `R` = the identity and `S` = k * a, where k = H(R || A
    /// || M) and a is the signer's secret scalar: [S]B - [k]A is then the
    /// identity, so the plain (non-strict) check accepts it for any message.
    fn identity_forgery(k: &Keypair, msg: &[u8]) -> Sig64 {
        use sha2::Digest;
        let r = curve25519_dalek::edwards::EdwardsPoint::default()
            .compress()
            .0;
        let mut h = sha2::Sha512::new();
        h.update(r);
        h.update(k.public().0);
        h.update(msg);
        let wide: [u8; 64] = h.finalize().into();
        let kh = curve25519_dalek::Scalar::from_bytes_mod_order_wide(&wide);
        let s = kh * k.0.to_scalar();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r);
        sig[32..].copy_from_slice(s.as_bytes());
        Bytes(sig)
    }

    #[test]
    fn fast_rule_matches_dalek_verify_strict() {
        use ed25519_dalek::Verifier;
        let keys: Vec<Keypair> = (1..=4).map(kp).collect();
        let msg = b"customs event".to_vec();
        let mut cases: Vec<(PublicKey, Vec<u8>, Sig64)> = Vec::new();
        for k in &keys {
            let good = k.sign(&msg);
            cases.push((k.public(), msg.clone(), good));
            cases.push((k.public(), b"other".to_vec(), good));
            // Every single-bit flip of R and of S.
            for bit in 0..512 {
                let mut bad = good;
                bad.0[bit / 8] ^= 1 << (bit % 8);
                cases.push((k.public(), msg.clone(), bad));
            }
            // Each small-order point as R, canonical and with the sign bit
            // flipped, against a sound key, with S = 0 and S from the
            // genuine signature.
            for t in EIGHT_TORSION.iter() {
                for flip in [0u8, 0x80] {
                    for s_half in [[0u8; 32], good.0[32..].try_into().unwrap()] {
                        let mut sig = [0u8; 64];
                        sig[..32].copy_from_slice(&t.compress().0);
                        sig[31] ^= flip;
                        sig[32..].copy_from_slice(&s_half);
                        cases.push((k.public(), msg.clone(), Bytes(sig)));
                    }
                }
            }
            // The plain equation holds (it yields the identity), R is the
            // identity: only the small-order check on R rejects it.
            let forged = identity_forgery(k, &msg);
            let vk = VerifyingKey::from_bytes(&k.public().0).unwrap();
            assert!(
                vk.verify(&msg, &Signature::from_bytes(&forged.0)).is_ok(),
                "the forgery must pass the plain check to test anything"
            );
            cases.push((k.public(), msg.clone(), forged));
        }
        // Non-canonical encodings of y = 0 and y = 1 (y + p) as R.
        for y_plus_p in [
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ] {
            let mut sig = keys[0].sign(&msg);
            sig.0[..32].copy_from_slice(&hex::decode(y_plus_p).unwrap());
            cases.push((keys[0].public(), msg.clone(), sig));
        }
        // Small-order keys: the identity "signature" and R = the key itself,
        // which the plain equation accepts for some messages.
        for t in EIGHT_TORSION.iter() {
            let key = Bytes(t.compress().0);
            for r in [curve25519_dalek::edwards::EdwardsPoint::default(), *t, -t] {
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&r.compress().0);
                for m in [&b"anything"[..], &b"else"[..], &msg[..]] {
                    cases.push((key, m.to_vec(), Bytes(sig)));
                }
            }
        }
        let mut plain_accepts = 0;
        for (key, m, sig) in &cases {
            assert_eq!(
                verify_strict(key, m, sig),
                dalek_strict(key, m, sig),
                "key {key} sig {sig}"
            );
            if let Ok(vk) = VerifyingKey::from_bytes(&key.0) {
                if vk.verify(m, &Signature::from_bytes(&sig.0)).is_ok() {
                    plain_accepts += 1;
                }
            }
        }
        let strict_accepts = cases
            .iter()
            .filter(|(k, m, s)| verify_strict(k, m, s).is_ok())
            .count();
        // 4 genuine signatures pass; the plain check also passes the
        // forgeries the strict rule must refuse.
        assert_eq!(strict_accepts, keys.len());
        assert!(
            plain_accepts > strict_accepts,
            "{plain_accepts} plain vs {strict_accepts} strict"
        );
    }
}

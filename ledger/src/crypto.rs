//! Ed25519 signing and the one verification rule used on every path.
//!
//! The rule (ADR 0002, revised in session 17): canonical `S` (below the group
//! order), canonical `R` and key encodings, neither `R` nor the key of small
//! order, and the cofactored equation `[8]([S]B - R - [k]A) = 0` with
//! `k = SHA-512(R || A || M)`. Registered keys must additionally be
//! torsion-free ([`check_registrable_key`]). Every signature an honest signer
//! makes satisfies the cofactorless equation too, and [`verify`] checks that
//! first; the two rules differ only for an `R` with a torsion component, which
//! only the holder of the secret key can produce.
//!
//! The cofactored equation is what lets [`verify_batch`] answer exactly as
//! [`verify`] does, item by item: one random linear combination of all the
//! equations, multiplied by the cofactor, is the identity when every item
//! verifies, and (with 128-bit random weights) is not when any one fails,
//! except with probability below 2^-124. On failure each item is verified
//! alone, so the verdicts never depend on the randomness.

use crate::hash::{Bytes, Sig64};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use curve25519_dalek::Scalar;
use ed25519_dalek::{Signer, SigningKey};

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
    let a = decompress_canonical(&key.0).ok_or(SigError::BadKey)?;
    if a.is_small_order() || !a.is_torsion_free() {
        return Err(SigError::WeakKey);
    }
    Ok(())
}

/// A decompressed key: the point and whether it is of small order.
#[derive(Debug, Clone, Copy)]
struct KeyPoint {
    point: EdwardsPoint,
    weak: bool,
}

/// Decompressed keys, by encoding: a handful of parties sign everything, and
/// decompressing a key costs about a fifth of a verification. Decompression
/// is a pure function of the bytes, so a cached key verifies exactly as a
/// fresh one; invalid encodings are never cached. Bounded (emptied when
/// full).
static KEYS: std::sync::Mutex<std::collections::BTreeMap<[u8; 32], KeyPoint>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());
const KEYS_CAPACITY: usize = 4096;

fn cached_key(key: &PublicKey) -> Result<KeyPoint, SigError> {
    let mut cache = KEYS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = cache.get(&key.0) {
        return Ok(*k);
    }
    let point = decompress_canonical(&key.0).ok_or(SigError::BadKey)?;
    if cache.len() >= KEYS_CAPACITY {
        cache.clear();
    }
    let entry = KeyPoint {
        point,
        weak: point.is_small_order(),
    };
    cache.insert(key.0, entry);
    Ok(entry)
}

/// The canonical encodings of the eight points of small order.
static SMALL_ORDER_ENCODINGS: std::sync::LazyLock<[[u8; 32]; 8]> =
    std::sync::LazyLock::new(|| curve25519_dalek::constants::EIGHT_TORSION.map(|p| p.compress().0));

/// Whether `bytes` encode `y` below the field prime 2^255 - 19 (the sign bit
/// aside): the prime's encoding is ed ff .. ff 7f, so only 19 values of the
/// low byte with every other bit set are non-canonical.
fn canonical_y(bytes: &[u8; 32]) -> bool {
    let top = bytes[31] & 0x7f;
    !(top == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff) && bytes[0] >= 0xed)
}

/// The point `bytes` encode, if the encoding is canonical. (`x = 0` with the
/// sign bit set is not canonical either; both such points are of small order,
/// which every caller refuses.)
fn decompress_canonical(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    if !canonical_y(bytes) {
        return None;
    }
    CompressedEdwardsY(*bytes).decompress()
}

/// `R` as the rule admits it: canonically encoded, not of small order.
fn sound_r(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    decompress_canonical(bytes).filter(|r| !r.is_small_order())
}

/// `k = SHA-512(R || A || M)` reduced modulo the group order.
fn challenge(r: &[u8], key: &PublicKey, msg: &[u8]) -> Scalar {
    use sha2::Digest;
    let mut h = sha2::Sha512::new();
    h.update(r);
    h.update(key.0);
    h.update(msg);
    let wide: [u8; 64] = h.finalize().into();
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// A signature's parts, checked for what the equation alone does not
/// cover: `S` canonical, `R` not one of the small-order encodings.
fn split_signature(sig: &Sig64) -> Option<([u8; 32], Scalar)> {
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&sig.0[..32]);
    s.copy_from_slice(&sig.0[32..]);
    if SMALL_ORDER_ENCODINGS.contains(&r) {
        return None;
    }
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s))?;
    Some((r, s))
}

/// The one verification rule (see the module documentation).
///
/// Computed in two steps. First the cofactorless equation, as a plain
/// Ed25519 check: `compress([S]B - [k]A)` equal to the `R` bytes. Those
/// bytes are then the canonical encoding of a point, of small order only if
/// they are one of the eight small-order encodings (refused up front), and
/// the cofactored equation holds too. Every honestly made signature stops
/// here. Otherwise `R` is decompressed (canonical, not of small order) and
/// the cofactored equation decides.
pub fn verify(key: &PublicKey, msg: &[u8], sig: &Sig64) -> Result<(), SigError> {
    let a = cached_key(key)?;
    if a.weak {
        return Err(SigError::BadSignature);
    }
    let (r_bytes, s) = split_signature(sig).ok_or(SigError::BadSignature)?;
    let k = challenge(&r_bytes, key, msg);
    let expected_r = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &-a.point, &s);
    if expected_r.compress().0 == r_bytes {
        return Ok(());
    }
    let r = sound_r(&r_bytes).ok_or(SigError::BadSignature)?;
    if !(expected_r - r).mul_by_cofactor().is_identity() {
        return Err(SigError::BadSignature);
    }
    Ok(())
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

    /// [`verify`](fn@verify), answering from the cache when this triple was
    /// verified before and remembering it when it verifies now.
    pub fn verify(&self, key: &PublicKey, msg: &[u8], sig: &Sig64) -> Result<(), SigError> {
        let d = triple_digest(key, msg, sig);
        if self.lock().set.contains(&d) {
            return Ok(());
        }
        verify(key, msg, sig)?;
        self.remember(&[d]);
        Ok(())
    }

    /// [`verify_batch`] over the items this cache does not answer already;
    /// those that verify are remembered. One verdict per item, in order,
    /// each equal to [`verify`](fn@verify)'s.
    pub fn verify_many(&self, items: &[BatchItem<'_>]) -> Vec<Result<(), SigError>> {
        let digests: Vec<[u8; 32]> = items
            .iter()
            .map(|i| triple_digest(i.key, i.msg, i.sig))
            .collect();
        let mut out: Vec<Option<Result<(), SigError>>> = {
            let g = self.lock();
            digests
                .iter()
                .map(|d| g.set.contains(d).then_some(Ok(())))
                .collect()
        };
        let todo: Vec<usize> = (0..items.len()).filter(|&i| out[i].is_none()).collect();
        if !todo.is_empty() {
            let batch: Vec<BatchItem<'_>> = todo.iter().map(|&i| items[i]).collect();
            let verdicts = verify_batch(&batch);
            let good: Vec<[u8; 32]> = todo
                .iter()
                .zip(&verdicts)
                .filter(|(_, v)| v.is_ok())
                .map(|(&i, _)| digests[i])
                .collect();
            self.remember(&good);
            for (&i, v) in todo.iter().zip(verdicts) {
                out[i] = Some(v);
            }
        }
        out.into_iter()
            .map(|v| v.unwrap_or(Err(SigError::BadSignature)))
            .collect()
    }

    fn remember(&self, digests: &[[u8; 32]]) {
        let mut g = self.lock();
        for d in digests {
            if g.set.insert(*d) {
                g.order.push_back(*d);
            }
        }
        while g.order.len() > self.capacity {
            if let Some(old) = g.order.pop_front() {
                g.set.remove(&old);
            }
        }
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

/// A signature ready for the batch equation: the screen of [`verify`]'s
/// conditions that the equation does not check (key sound, `S` canonical,
/// `R` canonical and not of small order), with `R` decompressed.
struct Screened {
    a: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

fn screen(item: &BatchItem<'_>) -> Option<Screened> {
    let a = cached_key(item.key).ok()?;
    if a.weak {
        return None;
    }
    let (r_bytes, s) = split_signature(item.sig)?;
    let r = sound_r(&r_bytes)?;
    Some(Screened {
        a: a.point,
        r,
        s,
        k: challenge(&r_bytes, item.key, item.msg),
    })
}

/// The batch equation over the screened items (`items[i]` for each `(i, _)`).
fn equation_holds(items: &[BatchItem<'_>], screened: &[(usize, Screened)]) -> bool {
    let mut weights = vec![0u8; 16 * screened.len()];
    rand::fill(&mut weights[..]);
    let mut b_coefficient = Scalar::ZERO;
    let mut scalars = Vec::with_capacity(screened.len() + 9);
    let mut points = Vec::with_capacity(screened.len() + 9);
    let mut by_key: std::collections::BTreeMap<[u8; 32], (Scalar, EdwardsPoint)> =
        std::collections::BTreeMap::new();
    for ((i, sc), w) in screened.iter().zip(weights.chunks_exact(16)) {
        let mut z = [0u8; 32];
        z[..16].copy_from_slice(w);
        let z = Scalar::from_bytes_mod_order(z);
        b_coefficient += z * sc.s;
        scalars.push(z);
        points.push(sc.r);
        let entry = by_key
            .entry(items[*i].key.0)
            .or_insert((Scalar::ZERO, sc.a));
        entry.0 += z * sc.k;
    }
    scalars.push(-b_coefficient);
    points.push(curve25519_dalek::constants::ED25519_BASEPOINT_POINT);
    for (c, a) in by_key.into_values() {
        scalars.push(c);
        points.push(a);
    }
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}

/// Verify many signatures; the verdict for each item equals [`verify`]'s.
/// Returns one result per item, in order.
///
/// The screened items go into one equation,
/// `[8]( -(sum z_i S_i) B + sum z_i R_i + sum_A (sum over A's items z_i k_i) A ) = 0`,
/// with independent random 128-bit weights `z_i` and one term per distinct
/// key. If any item's cofactored equation fails, the sum is the identity
/// only if the weights happen to cancel it (probability below 2^-124, the
/// weights are drawn after the signatures are fixed); then every item is
/// verified alone. A batch with a bad signature costs its equation plus the
/// single checks, about 1.5 times checking one by one.
pub fn verify_batch(items: &[BatchItem<'_>]) -> Vec<Result<(), SigError>> {
    let mut out: Vec<Option<Result<(), SigError>>> = vec![None; items.len()];
    let mut screened = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match screen(item) {
            Some(sc) => screened.push((i, sc)),
            // Let the rule name the failure (bad key vs bad signature).
            None => out[i] = Some(verify(item.key, item.msg, item.sig)),
        }
    }
    if screened.len() == 1 {
        let i = screened[0].0;
        out[i] = Some(verify(items[i].key, items[i].msg, items[i].sig));
    } else if !screened.is_empty() {
        let all_good = equation_holds(items, &screened);
        for (i, _) in &screened {
            out[*i] = Some(if all_good {
                Ok(())
            } else {
                verify(items[*i].key, items[*i].msg, items[*i].sig)
            });
        }
    }
    out.into_iter()
        .map(|v| v.unwrap_or(Err(SigError::BadSignature)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    fn kp(n: u8) -> Keypair {
        Keypair::from_seed(&[n; 32])
    }

    fn single_verdicts(items: &[BatchItem<'_>]) -> Vec<Result<(), SigError>> {
        items.iter().map(|i| verify(i.key, i.msg, i.sig)).collect()
    }

    fn items(cases: &[(PublicKey, Vec<u8>, Sig64)]) -> Vec<BatchItem<'_>> {
        cases
            .iter()
            .map(|(k, m, s)| BatchItem {
                key: k,
                msg: m,
                sig: s,
            })
            .collect()
    }

    /// A signature by `k` on `msg` whose `R` is `[r]B + t` for a torsion
    /// point `t`, with `S = r + k * a` for the challenge of that `R`. Only the
    /// secret key's holder can make one: the cofactored equation holds, the
    /// cofactorless one does not (for `t` not the identity).
    fn mixed_order_signature(k: &Keypair, msg: &[u8], t: &EdwardsPoint) -> Sig64 {
        let nonce = Scalar::from_bytes_mod_order_wide(&[7u8; 64]);
        let r = (ED25519_BASEPOINT_POINT * nonce + t).compress().0;
        let s = nonce + challenge(&r, &k.public(), msg) * k.0.to_scalar();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r);
        sig[32..].copy_from_slice(s.as_bytes());
        Bytes(sig)
    }

    /// `R || S` with `R` = the identity and `S` = k * a, where k = H(R || A
    /// || M) and a is the signer's secret scalar: [S]B - [k]A is then the
    /// identity, so the plain Ed25519 check accepts it for any message.
    fn identity_forgery(k: &Keypair, msg: &[u8]) -> Sig64 {
        let r = EdwardsPoint::default().compress().0;
        let s = challenge(&r, &k.public(), msg) * k.0.to_scalar();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r);
        sig[32..].copy_from_slice(s.as_bytes());
        Bytes(sig)
    }

    /// `ed25519-dalek`'s `verify_strict`, the reference the rule departs
    /// from only for mixed-order `R`.
    fn dalek_strict(key: &PublicKey, msg: &[u8], sig: &Sig64) -> Result<(), SigError> {
        let vk = VerifyingKey::from_bytes(&key.0).map_err(|_| SigError::BadKey)?;
        vk.verify_strict(msg, &Signature::from_bytes(&sig.0))
            .map_err(|_| SigError::BadSignature)
    }

    /// Valid, malleated, bit-flipped, small-order, mixed-order and
    /// non-canonical signatures and keys, each marked with whether it was
    /// made to have a mixed-order `R` (where the rule accepts and
    /// `verify_strict` refuses).
    fn corpus() -> Vec<(PublicKey, Vec<u8>, Sig64, bool)> {
        let keys: Vec<Keypair> = (1..=4).map(kp).collect();
        let msg = b"customs event".to_vec();
        let mut cases = Vec::new();
        for k in &keys {
            let good = k.sign(&msg);
            cases.push((k.public(), msg.clone(), good, false));
            cases.push((k.public(), b"other".to_vec(), good, false));
            // Every single-bit flip of R and of S.
            for bit in 0..512 {
                let mut bad = good;
                bad.0[bit / 8] ^= 1 << (bit % 8);
                cases.push((k.public(), msg.clone(), bad, false));
            }
            // S + l: the same scalar, not canonical.
            let l = hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
                .unwrap();
            let mut mal = good;
            let mut carry = 0u16;
            for (i, li) in l.iter().enumerate() {
                let v = u16::from(mal.0[32 + i]) + u16::from(*li) + carry;
                mal.0[32 + i] = (v & 0xff) as u8;
                carry = v >> 8;
            }
            cases.push((k.public(), msg.clone(), mal, false));
            // Each small-order point as R, canonical and with the sign bit
            // flipped, with S = 0 and with S from the genuine signature.
            for t in EIGHT_TORSION.iter() {
                for flip in [0u8, 0x80] {
                    for s_half in [[0u8; 32], good.0[32..].try_into().unwrap()] {
                        let mut sig = [0u8; 64];
                        sig[..32].copy_from_slice(&t.compress().0);
                        sig[31] ^= flip;
                        sig[32..].copy_from_slice(&s_half);
                        cases.push((k.public(), msg.clone(), Bytes(sig), false));
                    }
                }
            }
            // The equation holds with R the identity: only the small-order
            // check on R refuses it.
            cases.push((k.public(), msg.clone(), identity_forgery(k, &msg), false));
            // Mixed-order R made with the secret key (accepted), the same
            // with a wrong message, and a genuine R plus torsion with S
            // unchanged (refused: the challenge changed).
            let r_point = CompressedEdwardsY(good.0[..32].try_into().unwrap())
                .decompress()
                .unwrap();
            for t in EIGHT_TORSION.iter().skip(1) {
                let sig = mixed_order_signature(k, &msg, t);
                cases.push((k.public(), msg.clone(), sig, true));
                cases.push((k.public(), b"other".to_vec(), sig, false));
                let mut shifted = good;
                shifted.0[..32].copy_from_slice(&(r_point + t).compress().0);
                cases.push((k.public(), msg.clone(), shifted, false));
            }
        }
        // Non-canonical encodings of y = 0 and y = 1 (y + p) as R.
        for y_plus_p in [
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ] {
            let mut sig = keys[0].sign(&msg);
            sig.0[..32].copy_from_slice(&hex::decode(y_plus_p).unwrap());
            cases.push((keys[0].public(), msg.clone(), sig, false));
        }
        // Small-order keys: the identity "signature" and R = the key itself,
        // which the plain equation accepts for some messages.
        for t in EIGHT_TORSION.iter() {
            let key = Bytes(t.compress().0);
            for r in [EdwardsPoint::default(), *t, -t] {
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&r.compress().0);
                for m in [&b"anything"[..], &b"else"[..], &msg[..]] {
                    cases.push((key, m.to_vec(), Bytes(sig), false));
                }
            }
        }
        // A non-canonical key encoding (y >= p).
        let mut noncanon = [0xffu8; 32];
        noncanon[31] = 0x7f;
        cases.push((Bytes(noncanon), msg.clone(), keys[0].sign(&msg), false));
        cases
    }

    #[test]
    fn rule_departs_from_verify_strict_only_for_mixed_order_r() {
        let cases = corpus();
        let mut accepted = 0;
        let mut plain_accepts = 0;
        for (key, m, sig, mixed) in &cases {
            let ours = verify(key, m, sig);
            let strict = dalek_strict(key, m, sig);
            if *mixed {
                assert_eq!(ours, Ok(()), "mixed-order R by the key holder: {sig}");
                assert!(strict.is_err(), "verify_strict refuses mixed-order R");
            } else {
                assert_eq!(ours.is_ok(), strict.is_ok(), "key {key} sig {sig}");
            }
            accepted += usize::from(ours.is_ok());
            if let Ok(vk) = VerifyingKey::from_bytes(&key.0) {
                plain_accepts += usize::from(vk.verify(m, &Signature::from_bytes(&sig.0)).is_ok());
            }
        }
        // 4 genuine and 4 x 7 mixed-order signatures; the plain check also
        // passes forgeries the rule refuses (small-order R and keys).
        assert_eq!(accepted, 4 + 4 * 7);
        assert!(plain_accepts > 4, "{plain_accepts} plain accepts");
    }

    #[test]
    fn batch_and_single_verdicts_are_identical() {
        let all = corpus();
        let cases: Vec<(PublicKey, Vec<u8>, Sig64)> =
            all.iter().map(|(k, m, s, _)| (*k, m.clone(), *s)).collect();
        let items = items(&cases);
        let expected = single_verdicts(&items);
        assert_eq!(verify_batch(&items), expected);
        assert_eq!(expected.iter().filter(|r| r.is_ok()).count(), 32);
        // Windows of several sizes and offsets, so that valid items share
        // batches with every kind of invalid one.
        for w in [1, 2, 3, 5, 8, 13, 64] {
            for start in [0, 1, 7] {
                for chunk in items[start..].chunks(w) {
                    assert_eq!(verify_batch(chunk), single_verdicts(chunk));
                }
            }
        }
        // Only the valid ones, genuine and mixed-order: one equation, all good.
        let good: Vec<BatchItem<'_>> = items
            .iter()
            .zip(&expected)
            .filter(|(_, v)| v.is_ok())
            .map(|(i, _)| *i)
            .collect();
        assert!(verify_batch(&good).iter().all(|r| r.is_ok()));
        // ...and the equation itself holds for them (no silent fallback to
        // single checks), and fails when one bad item joins.
        let screened: Vec<(usize, Screened)> = good
            .iter()
            .enumerate()
            .map(|(i, it)| (i, screen(it).expect("valid items pass the screen")))
            .collect();
        for _ in 0..8 {
            assert!(equation_holds(&good, &screened));
        }
        let mut with_bad = good.clone();
        let other = b"other".to_vec();
        with_bad[3].msg = &other;
        let screened_bad: Vec<(usize, Screened)> = with_bad
            .iter()
            .enumerate()
            .map(|(i, it)| (i, screen(it).expect("a wrong message passes the screen")))
            .collect();
        assert!(!equation_holds(&with_bad, &screened_bad));
    }

    #[test]
    fn one_bad_signature_in_a_batch_is_named_alone() {
        let keys: Vec<Keypair> = (1..=3).map(kp).collect();
        let cases: Vec<(PublicKey, Vec<u8>, Sig64)> = (0..64u32)
            .map(|i| {
                let k = &keys[i as usize % 3];
                let m = format!("event {i}").into_bytes();
                let sig = k.sign(&m);
                (k.public(), m, sig)
            })
            .collect();
        for bad in [0usize, 31, 63] {
            let mut cases = cases.clone();
            cases[bad].1.push(b'!');
            let verdicts = verify_batch(&items(&cases));
            for (i, v) in verdicts.iter().enumerate() {
                assert_eq!(v.is_ok(), i != bad, "item {i} with {bad} bad");
            }
        }
    }

    #[test]
    fn verified_cache_answers_like_the_rule_and_stays_bounded() {
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
    fn verify_many_batches_what_the_cache_lacks_and_remembers_only_successes() {
        let cache = VerifiedSignatures::new(100);
        let k = kp(5);
        let mut cases: Vec<(PublicKey, Vec<u8>, Sig64)> = (0..10u8)
            .map(|i| {
                let m = vec![i; 3];
                (k.public(), m.clone(), k.sign(&m))
            })
            .collect();
        cases[4].2 .0[40] ^= 1;
        cache.verify(&cases[0].0, &cases[0].1, &cases[0].2).unwrap();
        let verdicts = cache.verify_many(&items(&cases));
        assert_eq!(verdicts, single_verdicts(&items(&cases)));
        assert_eq!(verdicts.iter().filter(|v| v.is_err()).count(), 1);
        assert_eq!(cache.len(), 9, "the nine good ones, the bad one not");
        assert_eq!(cache.verify_many(&items(&cases)), verdicts);
        assert_eq!(cache.len(), 9);
    }

    #[test]
    fn sign_verify_and_registrable() {
        let k = kp(1);
        let sig = k.sign(b"m");
        assert_eq!(verify(&k.public(), b"m", &sig), Ok(()));
        assert_eq!(verify(&k.public(), b"n", &sig), Err(SigError::BadSignature));
        assert_eq!(check_registrable_key(&k.public()), Ok(()));
    }

    #[test]
    fn small_order_mixed_order_and_non_canonical_keys_are_not_registrable() {
        for t in EIGHT_TORSION.iter() {
            let key = Bytes(t.compress().0);
            assert_ne!(check_registrable_key(&key), Ok(()));
        }
        let mixed = kp(3).0.verifying_key().to_edwards() + EIGHT_TORSION[1];
        assert_eq!(
            check_registrable_key(&Bytes(mixed.compress().0)),
            Err(SigError::WeakKey)
        );
        // y = 1 + p: the identity, encoded non-canonically.
        let mut one_plus_p = [0xffu8; 32];
        one_plus_p[0] = 0xee;
        one_plus_p[31] = 0x7f;
        assert_eq!(
            check_registrable_key(&Bytes(one_plus_p)),
            Err(SigError::BadKey)
        );
    }
}

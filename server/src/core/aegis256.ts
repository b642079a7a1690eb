/**
 * AEGIS-256 authenticated encryption with associated data, in pure TypeScript: Node 20's
 * `node:crypto` has AES-GCM but not AEGIS, and streams created with the `aegis-256` cipher
 * (S2-API.md §6.2, §6.7) need it. The algorithm is draft-irtf-cfrg-aegis-aead §4: a 256-bit key,
 * a 256-bit nonce, a 768-bit state of six AES blocks, and a 128-bit tag (a 256-bit tag is
 * available for the draft's test vectors).
 *
 * The AES round uses four 256-entry T-tables (SubBytes, ShiftRows and MixColumns folded into one
 * lookup per byte). Lookups indexed by state bytes are not constant-time on CPUs with data
 * caches: a process sharing the CPU can in principle learn about the state from cache timing.
 * That is the usual price of a fast software AES without AES-NI (a bitsliced one would be several
 * times slower); deployments that must resist co-located attackers should choose `aes-256-gcm`,
 * which runs on OpenSSL's AES-NI. The tag check itself is constant-time, and a failed decryption
 * erases the plaintext it computed.
 *
 * Layout: an AES block is four 32-bit words, column-major, each word little-endian (byte `r` of
 * column `c` is `(word[c] >>> 8r) & 0xff`); the state is 24 such words, block `i` at `4i`.
 */
import { assert } from "./assert.js";

/** Key, nonce and tag sizes of AEGIS-256 (draft-irtf-cfrg-aegis-aead §4). */
export const aegis256KeyBytes = 32;
export const aegis256NonceBytes = 32;
export const aegis256TagBytes = 16;

/** Tag sizes the draft defines; 16 bytes is what the record format uses. */
export type Aegis256TagBytes = 16 | 32;

// The AES S-box, generated (FIPS-197 §5.1.1: multiplicative inverse in GF(2^8), then the affine
// map) rather than typed in, so a typo cannot hide in a 256-entry table.
const sbox = new Uint8Array(256);
{
  const rotl8 = (x: number, shift: number): number => ((x << shift) | (x >>> (8 - shift))) & 0xff;
  let p = 1;
  let q = 1;
  // p runs over the multiplicative group by powers of 3; q tracks its inverse (powers of 3⁻¹).
  do {
    p = (p ^ (p << 1) ^ (p & 0x80 ? 0x1b : 0)) & 0xff;
    q ^= q << 1;
    q ^= q << 2;
    q ^= q << 4;
    q &= 0xff;
    if (q & 0x80) q ^= 0x09;
    sbox[p] = q ^ rotl8(q, 1) ^ rotl8(q, 2) ^ rotl8(q, 3) ^ rotl8(q, 4) ^ 0x63;
  } while (p !== 1);
  sbox[0] = 0x63; // 0 has no inverse; FIPS-197 maps it to 0.
}

/** xtime: multiplication by 2 in GF(2^8) with the AES polynomial. */
function mul2(x: number): number {
  return ((x << 1) ^ (x & 0x80 ? 0x1b : 0)) & 0xff;
}

// T0[x] is column (2·S(x), S(x), S(x), 3·S(x)): the MixColumns contribution of row 0; T1..T3 are
// its byte rotations for rows 1..3. Int32Array keeps every value a 32-bit integer for the JIT.
const t0 = new Int32Array(256);
const t1 = new Int32Array(256);
const t2 = new Int32Array(256);
const t3 = new Int32Array(256);
for (let x = 0; x < 256; x++) {
  const s = sbox[x]!;
  const s2 = mul2(s);
  const s3 = s2 ^ s;
  const word = s2 | (s << 8) | (s << 16) | (s3 << 24);
  t0[x] = word;
  t1[x] = (word << 8) | (word >>> 24);
  t2[x] = (word << 16) | (word >>> 16);
  t3[x] = (word << 24) | (word >>> 8);
}

// C0 and C1 (draft §2): the Fibonacci sequence mod 256, as little-endian words.
const c0 = wordsOf(
  new Uint8Array([
    0x00, 0x01, 0x01, 0x02, 0x03, 0x05, 0x08, 0x0d, 0x15, 0x22, 0x37, 0x59, 0x90, 0xe9, 0x79, 0x62,
  ]),
);
const c1 = wordsOf(
  new Uint8Array([
    0xdb, 0x3d, 0x18, 0x55, 0x6d, 0xc2, 0x2f, 0xf1, 0x20, 0x11, 0x31, 0x42, 0x73, 0xb5, 0x28, 0xdd,
  ]),
);

function wordsOf(block: Uint8Array): Int32Array {
  const words = new Int32Array(4);
  for (let i = 0; i < 4; i++) words[i] = readWord(block, 4 * i);
  return words;
}

function readWord(bytes: Uint8Array, offset: number): number {
  return (
    bytes[offset]! |
    (bytes[offset + 1]! << 8) |
    (bytes[offset + 2]! << 16) |
    (bytes[offset + 3]! << 24)
  );
}

function writeWord(bytes: Uint8Array, offset: number, word: number): void {
  bytes[offset] = word;
  bytes[offset + 1] = word >>> 8;
  bytes[offset + 2] = word >>> 16;
  bytes[offset + 3] = word >>> 24;
}

/**
 * AESRound(in, rk) of FIPS-197 (SubBytes, ShiftRows, MixColumns, AddRoundKey) on 16-byte blocks:
 * the draft's A.1 test vector checks it.
 * @internal
 */
export function aesRound(input: Uint8Array, roundKey: Uint8Array): Uint8Array {
  assert(input.length === 16 && roundKey.length === 16, "AES blocks are 16 bytes");
  const s = new Int32Array(24);
  s.set(wordsOf(input), 0);
  s.set(wordsOf(roundKey), 4);
  roundXorInto(s, 0, 4);
  const out = new Uint8Array(16);
  for (let i = 0; i < 4; i++) writeWord(out, 4 * i, s[4 + i]!);
  return out;
}

/** S[dst] = AESRound(S[src], S[dst]): block `src` through one AES round, keyed by block `dst`. */
function roundXorInto(s: Int32Array, src: number, dst: number): void {
  const w0 = s[src]!;
  const w1 = s[src + 1]!;
  const w2 = s[src + 2]!;
  const w3 = s[src + 3]!;
  s[dst] =
    s[dst]! ^ t0[w0 & 255]! ^ t1[(w1 >>> 8) & 255]! ^ t2[(w2 >>> 16) & 255]! ^ t3[w3 >>> 24]!;
  s[dst + 1] =
    s[dst + 1]! ^ t0[w1 & 255]! ^ t1[(w2 >>> 8) & 255]! ^ t2[(w3 >>> 16) & 255]! ^ t3[w0 >>> 24]!;
  s[dst + 2] =
    s[dst + 2]! ^ t0[w2 & 255]! ^ t1[(w3 >>> 8) & 255]! ^ t2[(w0 >>> 16) & 255]! ^ t3[w1 >>> 24]!;
  s[dst + 3] =
    s[dst + 3]! ^ t0[w3 & 255]! ^ t1[(w0 >>> 8) & 255]! ^ t2[(w1 >>> 16) & 255]! ^ t3[w2 >>> 24]!;
}

/**
 * Update(M) (draft §4.3): S'0 = AESRound(S5, S0 ^ M), S'i = AESRound(S(i-1), Si). Blocks are
 * updated from S5 down to S1 so each round reads its source before it is overwritten; AESRound(S5)
 * is computed first because S5 is the first block overwritten.
 */
function update(s: Int32Array, m0: number, m1: number, m2: number, m3: number): void {
  const w0 = s[20]!;
  const w1 = s[21]!;
  const w2 = s[22]!;
  const w3 = s[23]!;
  const r0 = t0[w0 & 255]! ^ t1[(w1 >>> 8) & 255]! ^ t2[(w2 >>> 16) & 255]! ^ t3[w3 >>> 24]!;
  const r1 = t0[w1 & 255]! ^ t1[(w2 >>> 8) & 255]! ^ t2[(w3 >>> 16) & 255]! ^ t3[w0 >>> 24]!;
  const r2 = t0[w2 & 255]! ^ t1[(w3 >>> 8) & 255]! ^ t2[(w0 >>> 16) & 255]! ^ t3[w1 >>> 24]!;
  const r3 = t0[w3 & 255]! ^ t1[(w0 >>> 8) & 255]! ^ t2[(w1 >>> 16) & 255]! ^ t3[w2 >>> 24]!;
  roundXorInto(s, 16, 20);
  roundXorInto(s, 12, 16);
  roundXorInto(s, 8, 12);
  roundXorInto(s, 4, 8);
  roundXorInto(s, 0, 4);
  s[0] = s[0]! ^ r0 ^ m0;
  s[1] = s[1]! ^ r1 ^ m1;
  s[2] = s[2]! ^ r2 ^ m2;
  s[3] = s[3]! ^ r3 ^ m3;
}

/**
 * Enc (draft §4.6) or Dec (§4.7) of whole blocks, given as little-endian words, with the state held
 * in locals for the JIT: the same steps as `update`, unrolled (measured about 1.4× faster than a
 * call of `update` per block on 8 KiB messages). `output` may not alias `input`.
 */
function processBlocks(
  s: Int32Array,
  input: Int32Array,
  output: Int32Array,
  isDecrypt: boolean,
): void {
  let s00 = s[0]!;
  let s01 = s[1]!;
  let s02 = s[2]!;
  let s03 = s[3]!;
  let s10 = s[4]!;
  let s11 = s[5]!;
  let s12 = s[6]!;
  let s13 = s[7]!;
  let s20 = s[8]!;
  let s21 = s[9]!;
  let s22 = s[10]!;
  let s23 = s[11]!;
  let s30 = s[12]!;
  let s31 = s[13]!;
  let s32 = s[14]!;
  let s33 = s[15]!;
  let s40 = s[16]!;
  let s41 = s[17]!;
  let s42 = s[18]!;
  let s43 = s[19]!;
  let s50 = s[20]!;
  let s51 = s[21]!;
  let s52 = s[22]!;
  let s53 = s[23]!;
  for (let i = 0; i < input.length; i += 4) {
    // z = S1 ^ S4 ^ S5 ^ (S2 & S3), taken before the update.
    const z0 = s10 ^ s40 ^ s50 ^ (s20 & s30);
    const z1 = s11 ^ s41 ^ s51 ^ (s21 & s31);
    const z2 = s12 ^ s42 ^ s52 ^ (s22 & s32);
    const z3 = s13 ^ s43 ^ s53 ^ (s23 & s33);
    const c0 = input[i]! ^ z0;
    const c1 = input[i + 1]! ^ z1;
    const c2 = input[i + 2]! ^ z2;
    const c3 = input[i + 3]! ^ z3;
    output[i] = c0;
    output[i + 1] = c1;
    output[i + 2] = c2;
    output[i + 3] = c3;
    // The absorbed block is the plaintext: the input when encrypting, the output when decrypting.
    const m0 = isDecrypt ? c0 : input[i]!;
    const m1 = isDecrypt ? c1 : input[i + 1]!;
    const m2 = isDecrypt ? c2 : input[i + 2]!;
    const m3 = isDecrypt ? c3 : input[i + 3]!;
    // Update(m), as in `update`: AESRound(S5) first, then S5 down to S1, then S0.
    const r0 = t0[s50 & 255]! ^ t1[(s51 >>> 8) & 255]! ^ t2[(s52 >>> 16) & 255]! ^ t3[s53 >>> 24]!;
    const r1 = t0[s51 & 255]! ^ t1[(s52 >>> 8) & 255]! ^ t2[(s53 >>> 16) & 255]! ^ t3[s50 >>> 24]!;
    const r2 = t0[s52 & 255]! ^ t1[(s53 >>> 8) & 255]! ^ t2[(s50 >>> 16) & 255]! ^ t3[s51 >>> 24]!;
    const r3 = t0[s53 & 255]! ^ t1[(s50 >>> 8) & 255]! ^ t2[(s51 >>> 16) & 255]! ^ t3[s52 >>> 24]!;
    s50 ^= t0[s40 & 255]! ^ t1[(s41 >>> 8) & 255]! ^ t2[(s42 >>> 16) & 255]! ^ t3[s43 >>> 24]!;
    s51 ^= t0[s41 & 255]! ^ t1[(s42 >>> 8) & 255]! ^ t2[(s43 >>> 16) & 255]! ^ t3[s40 >>> 24]!;
    s52 ^= t0[s42 & 255]! ^ t1[(s43 >>> 8) & 255]! ^ t2[(s40 >>> 16) & 255]! ^ t3[s41 >>> 24]!;
    s53 ^= t0[s43 & 255]! ^ t1[(s40 >>> 8) & 255]! ^ t2[(s41 >>> 16) & 255]! ^ t3[s42 >>> 24]!;
    s40 ^= t0[s30 & 255]! ^ t1[(s31 >>> 8) & 255]! ^ t2[(s32 >>> 16) & 255]! ^ t3[s33 >>> 24]!;
    s41 ^= t0[s31 & 255]! ^ t1[(s32 >>> 8) & 255]! ^ t2[(s33 >>> 16) & 255]! ^ t3[s30 >>> 24]!;
    s42 ^= t0[s32 & 255]! ^ t1[(s33 >>> 8) & 255]! ^ t2[(s30 >>> 16) & 255]! ^ t3[s31 >>> 24]!;
    s43 ^= t0[s33 & 255]! ^ t1[(s30 >>> 8) & 255]! ^ t2[(s31 >>> 16) & 255]! ^ t3[s32 >>> 24]!;
    s30 ^= t0[s20 & 255]! ^ t1[(s21 >>> 8) & 255]! ^ t2[(s22 >>> 16) & 255]! ^ t3[s23 >>> 24]!;
    s31 ^= t0[s21 & 255]! ^ t1[(s22 >>> 8) & 255]! ^ t2[(s23 >>> 16) & 255]! ^ t3[s20 >>> 24]!;
    s32 ^= t0[s22 & 255]! ^ t1[(s23 >>> 8) & 255]! ^ t2[(s20 >>> 16) & 255]! ^ t3[s21 >>> 24]!;
    s33 ^= t0[s23 & 255]! ^ t1[(s20 >>> 8) & 255]! ^ t2[(s21 >>> 16) & 255]! ^ t3[s22 >>> 24]!;
    s20 ^= t0[s10 & 255]! ^ t1[(s11 >>> 8) & 255]! ^ t2[(s12 >>> 16) & 255]! ^ t3[s13 >>> 24]!;
    s21 ^= t0[s11 & 255]! ^ t1[(s12 >>> 8) & 255]! ^ t2[(s13 >>> 16) & 255]! ^ t3[s10 >>> 24]!;
    s22 ^= t0[s12 & 255]! ^ t1[(s13 >>> 8) & 255]! ^ t2[(s10 >>> 16) & 255]! ^ t3[s11 >>> 24]!;
    s23 ^= t0[s13 & 255]! ^ t1[(s10 >>> 8) & 255]! ^ t2[(s11 >>> 16) & 255]! ^ t3[s12 >>> 24]!;
    s10 ^= t0[s00 & 255]! ^ t1[(s01 >>> 8) & 255]! ^ t2[(s02 >>> 16) & 255]! ^ t3[s03 >>> 24]!;
    s11 ^= t0[s01 & 255]! ^ t1[(s02 >>> 8) & 255]! ^ t2[(s03 >>> 16) & 255]! ^ t3[s00 >>> 24]!;
    s12 ^= t0[s02 & 255]! ^ t1[(s03 >>> 8) & 255]! ^ t2[(s00 >>> 16) & 255]! ^ t3[s01 >>> 24]!;
    s13 ^= t0[s03 & 255]! ^ t1[(s00 >>> 8) & 255]! ^ t2[(s01 >>> 16) & 255]! ^ t3[s02 >>> 24]!;
    // Each line above read only blocks not yet overwritten (block b-1 is updated after block b).
    s00 ^= r0 ^ m0;
    s01 ^= r1 ^ m1;
    s02 ^= r2 ^ m2;
    s03 ^= r3 ^ m3;
  }
  s[0] = s00;
  s[1] = s01;
  s[2] = s02;
  s[3] = s03;
  s[4] = s10;
  s[5] = s11;
  s[6] = s12;
  s[7] = s13;
  s[8] = s20;
  s[9] = s21;
  s[10] = s22;
  s[11] = s23;
  s[12] = s30;
  s[13] = s31;
  s[14] = s32;
  s[15] = s33;
  s[16] = s40;
  s[17] = s41;
  s[18] = s42;
  s[19] = s43;
  s[20] = s50;
  s[21] = s51;
  s[22] = s52;
  s[23] = s53;
}

/** Whether typed arrays use little-endian byte order here (the words' order); true on x64 and arm64. */
const isLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The first `bytes` (a multiple of 4) of `data` as little-endian words, without copying if it can. */
function wordsView(data: Uint8Array, bytes: number): Int32Array {
  if (isLittleEndian && (data.byteOffset & 3) === 0) {
    return new Int32Array(data.buffer, data.byteOffset, bytes >>> 2);
  }
  const words = new Int32Array(bytes >>> 2);
  for (let i = 0; i < words.length; i++) words[i] = readWord(data, 4 * i);
  return words;
}

/** Runs `processBlocks` over the whole blocks of `input` into the same range of `output`. */
function processWholeBlocks(
  s: Int32Array,
  input: Uint8Array,
  output: Uint8Array,
  bytes: number,
  isDecrypt: boolean,
): void {
  if (bytes === 0) return;
  const inputWords = wordsView(input, bytes);
  // `output` is allocated by the caller at offset 0, so on little-endian hosts this is a view.
  const outputWords = wordsView(output, bytes);
  processBlocks(s, inputWords, outputWords, isDecrypt);
  if (outputWords.buffer !== output.buffer) {
    for (let i = 0; i < outputWords.length; i++) writeWord(output, 4 * i, outputWords[i]!);
  }
}

/** Init(key, nonce) (draft §4.4). */
function init(key: Uint8Array, nonce: Uint8Array): Int32Array {
  const k0 = wordsOf(key.subarray(0, 16));
  const k1 = wordsOf(key.subarray(16, 32));
  const n0 = wordsOf(nonce.subarray(0, 16));
  const n1 = wordsOf(nonce.subarray(16, 32));
  const kn0 = new Int32Array(4);
  const kn1 = new Int32Array(4);
  const s = new Int32Array(24);
  for (let i = 0; i < 4; i++) {
    kn0[i] = k0[i]! ^ n0[i]!;
    kn1[i] = k1[i]! ^ n1[i]!;
    s[i] = kn0[i]!;
    s[4 + i] = kn1[i]!;
    s[8 + i] = c1[i]!;
    s[12 + i] = c0[i]!;
    s[16 + i] = k0[i]! ^ c0[i]!;
    s[20 + i] = k1[i]! ^ c1[i]!;
  }
  for (let round = 0; round < 4; round++) {
    update(s, k0[0]!, k0[1]!, k0[2]!, k0[3]!);
    update(s, k1[0]!, k1[1]!, k1[2]!, k1[3]!);
    update(s, kn0[0]!, kn0[1]!, kn0[2]!, kn0[3]!);
    update(s, kn1[0]!, kn1[1]!, kn1[2]!, kn1[3]!);
  }
  return s;
}

/** Absorbs the associated data, zero-padded to whole blocks (draft §4.1, §4.5). */
function absorb(s: Int32Array, ad: Uint8Array): void {
  const fullBytes = ad.length & ~15;
  for (let i = 0; i < fullBytes; i += 16) {
    update(s, readWord(ad, i), readWord(ad, i + 4), readWord(ad, i + 8), readWord(ad, i + 12));
  }
  if (fullBytes < ad.length) {
    const last = new Uint8Array(16);
    last.set(ad.subarray(fullBytes));
    update(s, readWord(last, 0), readWord(last, 4), readWord(last, 8), readWord(last, 12));
  }
}

/** Finalize(ad_len_bits, msg_len_bits) (draft §4.9). */
function finalize(
  s: Int32Array,
  adBytes: number,
  messageBytes: number,
  tagBytes: Aegis256TagBytes,
): Uint8Array {
  // LE64 of the bit lengths: lengths are safe integers, so bytes × 8 < 2^56 fits a double.
  const adBits = adBytes * 8;
  const messageBits = messageBytes * 8;
  const m0 = s[12]! ^ ((adBits % 0x1_0000_0000) | 0);
  const m1 = s[13]! ^ (Math.floor(adBits / 0x1_0000_0000) | 0);
  const m2 = s[14]! ^ ((messageBits % 0x1_0000_0000) | 0);
  const m3 = s[15]! ^ (Math.floor(messageBits / 0x1_0000_0000) | 0);
  for (let i = 0; i < 7; i++) update(s, m0, m1, m2, m3);
  const tag = new Uint8Array(tagBytes);
  for (let i = 0; i < 4; i++) {
    if (tagBytes === 16) {
      writeWord(tag, 4 * i, s[i]! ^ s[4 + i]! ^ s[8 + i]! ^ s[12 + i]! ^ s[16 + i]! ^ s[20 + i]!);
    } else {
      writeWord(tag, 4 * i, s[i]! ^ s[4 + i]! ^ s[8 + i]!);
      writeWord(tag, 16 + 4 * i, s[12 + i]! ^ s[16 + i]! ^ s[20 + i]!);
    }
  }
  return tag;
}

function checkSizes(key: Uint8Array, nonce: Uint8Array): void {
  assert(
    key.length === aegis256KeyBytes,
    `aegis-256 key must be 32 bytes. bytes=\`${key.length}\``,
  );
  assert(
    nonce.length === aegis256NonceBytes,
    `aegis-256 nonce must be 32 bytes. bytes=\`${nonce.length}\``,
  );
}

/**
 * Encrypts `plaintext` and authenticates it with `associatedData` (draft §4.1). The nonce must
 * never repeat under one key; 32 random bytes per message are safe (draft §10.1.1).
 */
export function aegis256Encrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  associatedData: Uint8Array,
  options: { readonly tagBytes?: Aegis256TagBytes } = {},
): { ciphertext: Uint8Array; tag: Uint8Array } {
  checkSizes(key, nonce);
  const s = init(key, nonce);
  absorb(s, associatedData);
  const length = plaintext.length;
  const ciphertext = new Uint8Array(length);
  const fullBytes = length & ~15;
  processWholeBlocks(s, plaintext, ciphertext, fullBytes, false);
  if (fullBytes < length) {
    // The last partial block is zero-padded, encrypted whole, and the output truncated.
    const block = new Uint8Array(16);
    block.set(plaintext.subarray(fullBytes));
    const encrypted = new Uint8Array(16);
    processWholeBlocks(s, block, encrypted, 16, false);
    ciphertext.set(encrypted.subarray(0, length - fullBytes), fullBytes);
    block.fill(0);
  }
  const tag = finalize(s, associatedData.length, length, options.tagBytes ?? aegis256TagBytes);
  return { ciphertext, tag };
}

/**
 * Decrypts and verifies (draft §4.2). Returns the plaintext, or `undefined` when the tag does not
 * match (wrong key, nonce or associated data, or a tampered ciphertext or tag); the plaintext
 * computed on the way is then overwritten with zeros. The tag length selects a 16- or 32-byte tag.
 */
export function aegis256Decrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  associatedData: Uint8Array,
): Uint8Array | undefined {
  checkSizes(key, nonce);
  assert(tag.length === 16 || tag.length === 32, `aegis-256 tag must be 16 or 32 bytes`);
  const s = init(key, nonce);
  absorb(s, associatedData);
  const length = ciphertext.length;
  const plaintext = new Uint8Array(length);
  const fullBytes = length & ~15;
  processWholeBlocks(s, ciphertext, plaintext, fullBytes, true);
  if (fullBytes < length) {
    // DecPartial(cn) (draft §4.8): decrypt the zero-padded block, keep |cn| bytes, and absorb
    // the plaintext zero-padded (not the padded decryption, whose tail is keystream).
    const tailBytes = length - fullBytes;
    const block = new Uint8Array(16);
    block.set(ciphertext.subarray(fullBytes));
    writeWord(block, 0, readWord(block, 0) ^ s[4]! ^ s[16]! ^ s[20]! ^ (s[8]! & s[12]!));
    writeWord(block, 4, readWord(block, 4) ^ s[5]! ^ s[17]! ^ s[21]! ^ (s[9]! & s[13]!));
    writeWord(block, 8, readWord(block, 8) ^ s[6]! ^ s[18]! ^ s[22]! ^ (s[10]! & s[14]!));
    writeWord(block, 12, readWord(block, 12) ^ s[7]! ^ s[19]! ^ s[23]! ^ (s[11]! & s[15]!));
    block.fill(0, tailBytes);
    update(s, readWord(block, 0), readWord(block, 4), readWord(block, 8), readWord(block, 12));
    plaintext.set(block.subarray(0, tailBytes), fullBytes);
    block.fill(0);
  }
  const expected = finalize(s, associatedData.length, length, tag.length as Aegis256TagBytes);
  if (!constantTimeEqual(expected, tag)) {
    plaintext.fill(0);
    expected.fill(0);
    return undefined;
  }
  return plaintext;
}

/**
 * Whether two byte strings of public, equal length are equal, in time independent of where they
 * differ (draft §2 CtEq): every byte is always compared.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ b[i]!;
  return difference === 0;
}

/**
 * Update(M) on a state given as six 16-byte blocks S0..S5, concatenated: the draft's A.3.1 test
 * vector checks it.
 * @internal
 */
export function aegis256Update(state: Uint8Array, message: Uint8Array): Uint8Array {
  assert(state.length === 96 && message.length === 16, "state is 6 blocks, message 1 block");
  const s = new Int32Array(24);
  for (let i = 0; i < 24; i++) s[i] = readWord(state, 4 * i);
  const m = wordsOf(message);
  update(s, m[0]!, m[1]!, m[2]!, m[3]!);
  const out = new Uint8Array(96);
  for (let i = 0; i < 24; i++) writeWord(out, 4 * i, s[i]!);
  return out;
}

// Goal: our AEGIS-256 is the algorithm of draft-irtf-cfrg-aegis-aead, byte for byte, and rejects
// every forgery the published vectors try. Method: the draft's appendix A vectors (AESRound,
// Update, the nine AEGIS-256 AEAD vectors with both tag sizes, the negative ones included), a
// selection of Wycheproof's aegis256_test.json (known answers, pseudorandom sizes, pre-final
// versions that must fail, single-bit tag flips), and fast-check round trips and tamper checks.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  aegis256Decrypt,
  aegis256Encrypt,
  aegis256Update,
  aesRound,
  constantTimeEqual,
} from "./aegis256.js";

function hex(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text.replace(/\s+/g, ""), "hex"));
}

function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

interface Vector {
  readonly name: string;
  readonly key: string;
  readonly nonce: string;
  readonly ad: string;
  readonly msg: string;
  readonly ct: string;
  readonly tag128: string;
  readonly tag256?: string;
}

// draft-irtf-cfrg-aegis-aead-17, appendix A.3. Keys and nonces of vectors 1–5 and 7–9.
const draftKey = "10010000000000000000000000000000 00000000000000000000000000000000";
const draftNonce = "10000200000000000000000000000000 00000000000000000000000000000000";

const draftVectors: readonly Vector[] = [
  {
    name: "A.3.2 test vector 1",
    key: draftKey,
    nonce: draftNonce,
    ad: "",
    msg: "00000000000000000000000000000000",
    ct: "754fc3d8c973246dcc6d741412a4b236",
    tag128: "3fe91994768b332ed7f570a19ec5896e",
    tag256: "1181a1d18091082bf0266f66297d167d 2e68b845f61a3b0527d31fc7b7b89f13",
  },
  {
    name: "A.3.3 test vector 2",
    key: draftKey,
    nonce: draftNonce,
    ad: "",
    msg: "",
    ct: "",
    tag128: "e3def978a0f054afd1e761d7553afba3",
    tag256: "6a348c930adbd654896e1666aad67de9 89ea75ebaa2b82fb588977b1ffec864a",
  },
  {
    name: "A.3.4 test vector 3",
    key: draftKey,
    nonce: draftNonce,
    ad: "0001020304050607",
    msg: "000102030405060708090a0b0c0d0e0f 101112131415161718191a1b1c1d1e1f",
    ct: "f373079ed84b2709faee373584585d60 accd191db310ef5d8b11833df9dec711",
    tag128: "8d86f91ee606e9ff26a01b64ccbdd91d",
    tag256: "b7d28d0c3c0ebd409fd22b4416050307 3a547412da0854bfb9723020dab8da1a",
  },
  {
    name: "A.3.5 test vector 4",
    key: draftKey,
    nonce: draftNonce,
    ad: "0001020304050607",
    msg: "000102030405060708090a0b0c0d",
    ct: "f373079ed84b2709faee37358458",
    tag128: "c60b9c2d33ceb058f96e6dd03c215652",
    tag256: "8c1cc703c81281bee3f6d9966e14948b 4a175b2efbdc31e61a98b4465235c2d9",
  },
  {
    name: "A.3.6 test vector 5",
    key: draftKey,
    nonce: draftNonce,
    ad: `000102030405060708090a0b0c0d0e0f 101112131415161718191a1b1c1d1e1f
         20212223242526272829`,
    msg: `101112131415161718191a1b1c1d1e1f 202122232425262728292a2b2c2d2e2f
          3031323334353637`,
    ct: `57754a7d09963e7c787583a2e7b859bb 24fa1e04d49fd550b2511a358e3bca25
         2a9b1b8b30cc4a67`,
    tag128: "ab8a7d53fd0e98d727accca94925e128",
    tag256: "a3aca270c006094d71c20e6910b5161c 0826df233d08919a566ec2c05990f734",
  },
];

/** Draft vectors 6–9: each MUST return "verification failed", with either tag size. */
const draftNegativeVectors: readonly Omit<Vector, "msg">[] = [
  {
    name: "A.3.7 test vector 6 (key and nonce swapped)",
    key: "10000200000000000000000000000000 00000000000000000000000000000000",
    nonce: "10010000000000000000000000000000 00000000000000000000000000000000",
    ad: "0001020304050607",
    ct: "f373079ed84b2709faee37358458",
    tag128: "c60b9c2d33ceb058f96e6dd03c215652",
    tag256: "8c1cc703c81281bee3f6d9966e14948b 4a175b2efbdc31e61a98b4465235c2d9",
  },
  {
    name: "A.3.8 test vector 7 (ciphertext changed)",
    key: draftKey,
    nonce: draftNonce,
    ad: "0001020304050607",
    ct: "f373079ed84b2709faee37358459",
    tag128: "c60b9c2d33ceb058f96e6dd03c215652",
    tag256: "8c1cc703c81281bee3f6d9966e14948b 4a175b2efbdc31e61a98b4465235c2d9",
  },
  {
    name: "A.3.9 test vector 8 (associated data changed)",
    key: draftKey,
    nonce: draftNonce,
    ad: "0001020304050608",
    ct: "f373079ed84b2709faee37358458",
    tag128: "c60b9c2d33ceb058f96e6dd03c215652",
    tag256: "8c1cc703c81281bee3f6d9966e14948b 4a175b2efbdc31e61a98b4465235c2d9",
  },
  {
    name: "A.3.10 test vector 9 (tag changed)",
    key: draftKey,
    nonce: draftNonce,
    ad: "0001020304050607",
    ct: "f373079ed84b2709faee37358458",
    tag128: "c60b9c2d33ceb058f96e6dd03c215653",
    tag256: "8c1cc703c81281bee3f6d9966e14948b 4a175b2efbdc31e61a98b4465235c2da",
  },
];

// Wycheproof testvectors_v1/aegis256_test.json (C2SP/wycheproof), a selection: every known-answer
// vector, short and long pseudorandom sizes, a long associated data.
const wycheproofValid: readonly Vector[] = [
  {
    name: "wycheproof tcId 5",
    key: "0000000000000000000000000000000000000000000000000000000000000000",
    nonce: "0000000000000000000000000000000000000000000000000000000000000000",
    ad: "",
    msg: "00000000000000000000000000000000",
    ct: "b98f03a947807713d75a4fff9fc277a6",
    tag128: "478f3b50dc478ef7d5cf2d0f7cc13180",
  },
  {
    name: "wycheproof tcId 6",
    key: "0000000000000000000000000000000000000000000000000000000000000000",
    nonce: "0000000000000000000000000000000000000000000000000000000000000000",
    ad: "00000000000000000000000000000000",
    msg: "00000000000000000000000000000000",
    ct: "b286705e6ccf368974ade9ff5550a4c5",
    tag128: "fdeb4a822f3ddd1fd4159e1db11a4c6b",
  },
  {
    name: "wycheproof tcId 7",
    key: "0001000000000000000000000000000000000000000000000000000000000000",
    nonce: "0000020000000000000000000000000000000000000000000000000000000000",
    ad: "00010203",
    msg: "00000000000000000000000000000000",
    ct: "1f452a22fc07f2471ab4345d7ab121b1",
    tag128: "065a9af5cc2fd9fee11280a51e37fdcc",
  },
  {
    name: "wycheproof tcId 9",
    key: "0000000000000000000000000000000000000000000000000000000000000000",
    nonce: "0000000000000000000000000000000000000000000000000000000000000000",
    ad: "",
    msg: "",
    ct: "",
    tag128: "f7a0878f68bd083e8065354071fc27c3",
  },
  {
    name: "wycheproof tcId 11",
    key: "cc6657fd5f0014430cd8a2afa1b1270094c29427d5fbc0b0a2cfc0e87c83ba89",
    nonce: "c0b1fdebffb7f2e277ffb88c0fa369b65f29c78d55e2cc258705a7e2440cb0b5",
    ad: "",
    msg: "",
    ct: "",
    tag128: "5f9302932f6af3a489a6fcca836a9d4d",
  },
  {
    name: "wycheproof tcId 12",
    key: "b1336707a426d43755b503b69e0056bd99d169b991c2def3257921af839e2ddf",
    nonce: "967304567c8309a58e259eb2141e076710f39dc65c2c0106ec20a60fd329a8f5",
    ad: "",
    msg: "45",
    ct: "fd",
    tag128: "684e6dc775e429c59ca141a094087e63",
  },
  {
    name: "wycheproof tcId 13",
    key: "2b65da4d22e88317fe0d8c5c6198aadf6ccf17ee369f8dd2f0eeb129ac624cdb",
    nonce: "69493a88893bc2c5fd6dda80988d244dafad94ea2d0e9e2bc6931fb2caff44be",
    ad: "",
    msg: "c83e",
    ct: "fce3",
    tag128: "8f8d18ee473746e61bb8ff65ff8bea2b",
  },
  {
    name: "wycheproof tcId 15",
    key: "64be0293c47b5f5db4c2ac29280b207cd343394ececb24b57bd8957dc952cc20",
    nonce: "71277f82787ecbe27889d0a7c43048b504708a9a3d6abbe9a999a0f8638b9ce9",
    ad: "",
    msg: "9cdd19e2",
    ct: "d03c953f",
    tag128: "39284c719da05d71aacb933c0e65634a",
  },
  {
    name: "wycheproof tcId 26",
    key: "dfdbe0ad5be9823963239f9f4dd9f364002a62a7e7648f47b1a33cd296586d74",
    nonce: "9881cffdbed3316b2460e80f794bc8b68e5d98c207ac8750813d9a537c21a335",
    ad: "",
    msg: "2fb7993e304a4875316978a70151c8",
    ct: "ea33bd94569bb8d9b8c97ce5524ae6",
    tag128: "6a067c556b79f7c64ca6d4b1593fc665",
  },
  {
    name: "wycheproof tcId 27",
    key: "aa5429fd3f178b3885f2c696975e88890102455b5d9e42766429e80d4889672a",
    nonce: "e1ed38af5753851b79175e4ae11fd6cf80033f81aec484ecd0448c5e7cc0a27e",
    ad: "",
    msg: "7aa8919ebb950f34690acb98651854cb",
    ct: "5c8f1af7c12997873056004cb403c9d2",
    tag128: "43b93cc3a9e6ddbeb18ba8bead2ab28f",
  },
  {
    name: "wycheproof tcId 69",
    key: "1143ae6e77b8c91c8e54072b4f0fc6c604611eaf2c07395816b67b77695e9361",
    nonce: "3843735fd86094225d60bc3cb3862955166f6d553466aea9499adf468deab87c",
    ad: "",
    msg: `7483d0f4cd0895f4b98abc11ff0be99aa0db0d91e95a612a4fdbcbfa3469efbe3b532a1850e9be14eb7bfdd51a
          db9a92390ac9c9dac4ad104f71`,
    ct: `feb1574e018a68c09340295cc207d4a56034575639099db667cc9eb2782bccf37e6ab29ca726e80ee75681ac04
         be626ec9ac2a5c4a1b8dc7b7c3`,
    tag128: "e913a3b97acdced223343874840fae88",
  },
  {
    name: "wycheproof tcId 320",
    key: "00f5f9e6d2717a250c8402465f15a1cc92bf9a5dc70a4a9bdb41f124f9ef492c",
    nonce: "67ceb6b2fd6cd57b2a8262ee66259a58df68a7c975cd9771ac74ee47626ac169",
    ad: `a6e11d49731b1e14381fa8717157c445cbe496a70b9a77ba4e6796f94b207758b52c26c305a8f7949a7db820e5
         86247bf46031b46d301d018e54344d6c5fc2ea07af389d476620d62440c68fe30668386958a853b0f9a85c7448
         3d1ccf77c518e05a0946f82deb7e069a2ee2cd00a686405abbc3f06f86cf97cc642c1452281c57f409853b40eb
         8878bdfcdb5f3eb2b17ad9ea53`,
    msg: "4b288a8888d11201812e57bd5becdc07",
    ct: "b949d92941704d6b7345550a1ecfc727",
    tag128: "8f7bdc252349f2034921ad4ee4044c43",
  },
  {
    name: "wycheproof tcId 334",
    key: "1681ba0f1b2ebdc69318366eb214da5240e75524ddd3f58f5c0dc6d8d38ffe92",
    nonce: "101df5ef22a91c0fe194854dbdf52c41c8df11112b61e09985cab0db0cc06568",
    ad: "",
    msg: `eedde49254392322771da0e1abad610252095cc4a67940c7e7dc2c480411322f848084132b303119081ed1d3ca
          85ac18551cfcf87228ad9b71081f823fd129c9d46bd1a7a9b078788e08413ebc06498189b798eeaa1f1a5b65bd
          02f96d816a32f5196e330048233b7c7e88ae81054ef620f26f9abd8fb08bf29794020d111a70d993f763ae6aa6
          da6d19a832b24e21553cf247d721e01fc80a685bd92c7ada4b6b0c17778f8a43c009b303c646ad6fa308996438
          2b7549ce3bd2befa55c7a8ab157b19d95f71f0733eb5ca84e2f61886a4e6d086f57788c918fbb808ec5eec`,
    ct: `a8bfc9cd6a4b105ce839b9677ef91167e783b8ed2db0e3a32a761b21d4def44a92737d57a64761c5b877d35671
         b0e13998c1ba3430054125636b782ea8ae07afb3e974f2d13350ad0aae1a55e120400928a1bac8f3f72a360b6d
         813352b741fe57ba0f0f338a69f884943c9d30e25c6b27f06fae805c40d30a83db23b396d35982cdc9400061aa
         913b267333e30b036d117c3af7f8cc0b2dc812dd8e4ee62965a91cf827b3966e20848278ea3c2e6b7f93117d65
         f03a1505cf56b5df98aef7a0377845432e8e1040b1dad9de49257eba8a514cfe792b7bc567e08aeeaacc19`,
    tag128: "3233c6cfb36b9930b120f23162d03593",
  },
];

// Wycheproof's "OldVersion" vectors: tags of the pre-final AEGIS-256 (6 finalization rounds, not
// 7, eprint 2013/695). They must not verify.
const wycheproofOldVersion: readonly Omit<Vector, "msg">[] = [
  {
    name: "wycheproof tcId 1",
    key: "0000000000000000000000000000000000000000000000000000000000000000",
    nonce: "0000000000000000000000000000000000000000000000000000000000000000",
    ad: "",
    ct: "b98f03a947807713d75a4fff9fc277a6",
    tag128: "a008acb1d372d73932ec5e6df9aca70a",
  },
  {
    name: "wycheproof tcId 2",
    key: "0000000000000000000000000000000000000000000000000000000000000000",
    nonce: "0000000000000000000000000000000000000000000000000000000000000000",
    ad: "00000000000000000000000000000000",
    ct: "b286705e6ccf368974ade9ff5550a4c5",
    tag128: "367f3f14897b31c6a66eb7b540eccc8b",
  },
  {
    name: "wycheproof tcId 3",
    key: "0001000000000000000000000000000000000000000000000000000000000000",
    nonce: "0000020000000000000000000000000000000000000000000000000000000000",
    ad: "00010203",
    ct: "1f452a22fc07f2471ab4345d7ab121b1",
    tag128: "0d80d9c73cd4b8b3422b66cdaa45ae8a",
  },
  {
    name: "wycheproof tcId 4",
    key: "1001000000000000000000000000000000000000000000000000000000000000",
    nonce: "1000020000000000000000000000000000000000000000000000000000000000",
    ad: "0001020304050607",
    ct: "f373079ed84b2709faee373584585d60accd191db310ef5d8b11833df9dec711",
    tag128: "787347bc96d3d0fdb33ddc8ee5ef4924",
  },
];

// Wycheproof's "ModifiedTag" vectors (tcId 349–472) flip bits of the tags of these four
// encryptions; here every one of the 128 single-bit flips is tried, a superset of theirs.
const modifiedTagKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const modifiedTagNonce = "505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f";
const modifiedTagBases: readonly Vector[] = [
  {
    name: "empty message",
    key: modifiedTagKey,
    nonce: modifiedTagNonce,
    ad: "",
    msg: "",
    ct: "",
    tag128: "c6b12b15690388d266072201f75331e5",
  },
  {
    name: "15-byte message",
    key: modifiedTagKey,
    nonce: modifiedTagNonce,
    ad: "",
    msg: "000102030405060708090a0b0c0d0e",
    ct: "b6c1000669eb0e577bf103d13d915b",
    tag128: "c27c28616f955e1fa01293613a913938",
  },
  {
    name: "16-byte message",
    key: modifiedTagKey,
    nonce: modifiedTagNonce,
    ad: "",
    msg: "000102030405060708090a0b0c0d0e0f",
    ct: "b6c1000669eb0e577bf103d13d915bb5",
    tag128: "e19ceeb3018394743af4e90ac6d06125",
  },
  {
    name: "17-byte message",
    key: modifiedTagKey,
    nonce: modifiedTagNonce,
    ad: "",
    msg: "000102030405060708090a0b0c0d0e0f10",
    ct: "b6c1000669eb0e577bf103d13d915bb5b0",
    tag128: "02a4dae23e30303ef8884f20502a7b47",
  },
];

/** Checks encryption and decryption of a valid vector, for each tag size it gives. */
function checkValid(vector: Vector): void {
  const key = hex(vector.key);
  const nonce = hex(vector.nonce);
  const ad = hex(vector.ad);
  const msg = hex(vector.msg);
  const sealed = aegis256Encrypt(key, nonce, msg, ad);
  assert.equal(hexOf(sealed.ciphertext), hexOf(hex(vector.ct)));
  assert.equal(hexOf(sealed.tag), hexOf(hex(vector.tag128)));
  const opened = aegis256Decrypt(key, nonce, hex(vector.ct), hex(vector.tag128), ad);
  assert.ok(opened !== undefined, "a valid vector verifies");
  assert.equal(hexOf(opened), hexOf(msg));
  if (vector.tag256 !== undefined) {
    const sealed256 = aegis256Encrypt(key, nonce, msg, ad, { tagBytes: 32 });
    assert.equal(hexOf(sealed256.ciphertext), hexOf(hex(vector.ct)));
    assert.equal(hexOf(sealed256.tag), hexOf(hex(vector.tag256)));
    const opened256 = aegis256Decrypt(key, nonce, hex(vector.ct), hex(vector.tag256), ad);
    assert.ok(opened256 !== undefined, "a valid vector verifies with its 256-bit tag");
    assert.equal(hexOf(opened256), hexOf(msg));
  }
}

/** Checks that a negative vector fails verification with each tag size it gives. */
function checkInvalid(vector: Omit<Vector, "msg">): void {
  const args = [hex(vector.key), hex(vector.nonce), hex(vector.ct)] as const;
  assert.equal(aegis256Decrypt(...args, hex(vector.tag128), hex(vector.ad)), undefined);
  if (vector.tag256 !== undefined) {
    assert.equal(aegis256Decrypt(...args, hex(vector.tag256), hex(vector.ad)), undefined);
  }
}

describe("AEGIS-256 primitives (draft appendix A.1, A.3.1)", () => {
  it("AESRound matches the A.1 test vector", () => {
    const out = aesRound(
      hex("000102030405060708090a0b0c0d0e0f"),
      hex("101112131415161718191a1b1c1d1e1f"),
    );
    assert.equal(hexOf(out), "7a7b4e5638782546a8c0477a3b813f43");
  });

  it("Update matches the A.3.1 test vector", () => {
    const state = hex(`
      1fa1207ed76c86f2c4bb40e8b395b43e b44c375e6c1e1978db64bcd12e9e332f
      0dab84bfa9f0226432ff630f233d4e5b d7ef65c9b93e8ee60c75161407b066e7
      a760bb3da073fbd92bdc24734b1f56fb a828a18d6a964497ac6e7e53c5f55c73`);
    const after = aegis256Update(state, hex("b165617ed04ab738afb2612c6d18a1ec"));
    assert.equal(
      hexOf(after),
      hexOf(
        hex(`
          e6bc643bae82dfa3d991b1b323839dcd 648578232ba0f2f0a3677f617dc052c3
          ea788e0e572044a46059212dd007a789 2f1498ae19b80da13fba698f088a8590
          a54c2ee95e8c2a2c3dae2ec743ae6b86 a3240fceb68e32d5d114df1b5363ab67`),
      ),
    );
  });
});

describe("AEGIS-256 draft test vectors (appendix A.3)", () => {
  for (const vector of draftVectors) {
    it(`${vector.name} encrypts and decrypts (128- and 256-bit tags)`, () => checkValid(vector));
  }
  for (const vector of draftNegativeVectors) {
    it(`${vector.name} fails verification (128- and 256-bit tags)`, () => checkInvalid(vector));
  }
});

describe("AEGIS-256 Wycheproof vectors", () => {
  for (const vector of wycheproofValid) {
    it(`${vector.name} encrypts and decrypts`, () => checkValid(vector));
  }
  for (const vector of wycheproofOldVersion) {
    it(`${vector.name} (pre-final version) fails verification`, () => checkInvalid(vector));
  }
  for (const vector of modifiedTagBases) {
    it(`every single-bit tag flip of the ${vector.name} fails verification`, () => {
      checkValid(vector);
      const tag = hex(vector.tag128);
      for (let bit = 0; bit < 128; bit++) {
        const flipped = tag.slice();
        flipped[bit >>> 3]! ^= 1 << (bit & 7);
        const opened = aegis256Decrypt(
          hex(vector.key),
          hex(vector.nonce),
          hex(vector.ct),
          flipped,
          hex(vector.ad),
        );
        assert.equal(opened, undefined, `bit ${bit}`);
      }
    });
  }
});

describe("AEGIS-256 properties", () => {
  const bytes = (maxLength: number) => fc.uint8Array({ maxLength });
  const key = fc.uint8Array({ minLength: 32, maxLength: 32 });

  it("decrypts what it encrypts, for any key, nonce, message and associated data", () => {
    fc.assert(
      fc.property(key, key, bytes(300), bytes(100), (k, nonce, msg, ad) => {
        const { ciphertext, tag } = aegis256Encrypt(k, nonce, msg, ad);
        assert.equal(ciphertext.length, msg.length);
        assert.equal(tag.length, 16);
        const opened = aegis256Decrypt(k, nonce, ciphertext, tag, ad);
        assert.ok(opened !== undefined);
        assert.deepEqual(opened, msg);
      }),
    );
  });

  it("rejects any single-bit change to the ciphertext, the tag or the associated data", () => {
    fc.assert(
      fc.property(
        key,
        key,
        bytes(100),
        bytes(40),
        fc.constantFrom("ciphertext", "tag", "ad"),
        fc.nat(),
        (k, nonce, msg, ad, target, position) => {
          const { ciphertext, tag } = aegis256Encrypt(k, nonce, msg, ad);
          const parts = { ciphertext: ciphertext.slice(), tag: tag.slice(), ad: ad.slice() };
          const part = parts[target];
          fc.pre(part.length > 0);
          const bit = position % (part.length * 8);
          part[bit >>> 3]! ^= 1 << (bit & 7);
          assert.equal(aegis256Decrypt(k, nonce, parts.ciphertext, parts.tag, parts.ad), undefined);
        },
      ),
    );
  });

  it("rejects a different key or nonce", () => {
    fc.assert(
      fc.property(key, key, key, bytes(64), (k, otherKey, nonce, msg) => {
        fc.pre(!constantTimeEqual(k, otherKey));
        const { ciphertext, tag } = aegis256Encrypt(k, nonce, msg, new Uint8Array(0));
        const empty = new Uint8Array(0);
        assert.equal(aegis256Decrypt(otherKey, nonce, ciphertext, tag, empty), undefined);
        assert.equal(aegis256Decrypt(k, otherKey, ciphertext, tag, empty), undefined);
      }),
    );
  });

  it("gives the same result for inputs at any byte offset (word views and copies agree)", () => {
    fc.assert(
      fc.property(key, key, bytes(200), fc.integer({ min: 1, max: 7 }), (k, nonce, msg, shift) => {
        const aligned = aegis256Encrypt(k, nonce, msg, new Uint8Array(0));
        const shifted = new Uint8Array(msg.length + shift);
        shifted.set(msg, shift);
        const unaligned = aegis256Encrypt(k, nonce, shifted.subarray(shift), new Uint8Array(0));
        assert.deepEqual(unaligned, aligned);
        const ciphertext = new Uint8Array(msg.length + shift);
        ciphertext.set(aligned.ciphertext, shift);
        const opened = aegis256Decrypt(
          k,
          nonce,
          ciphertext.subarray(shift),
          aligned.tag,
          new Uint8Array(0),
        );
        assert.deepEqual(opened, msg);
      }),
    );
  });

  it("overwrites nothing it is given and erases no caller buffer on failure", () => {
    const k = new Uint8Array(32).fill(7);
    const nonce = new Uint8Array(32).fill(9);
    const msg = new Uint8Array(40).fill(1);
    const { ciphertext, tag } = aegis256Encrypt(k, nonce, msg, new Uint8Array(0));
    const before = ciphertext.slice();
    tag[0]! ^= 1;
    assert.equal(aegis256Decrypt(k, nonce, ciphertext, tag, new Uint8Array(0)), undefined);
    assert.deepEqual(ciphertext, before);
    assert.deepEqual(msg, new Uint8Array(40).fill(1));
  });

  it("compares tags in constant time but still exactly", () => {
    assert.equal(constantTimeEqual(hex("00ff"), hex("00ff")), true);
    assert.equal(constantTimeEqual(hex("00ff"), hex("00fe")), false);
    assert.equal(constantTimeEqual(hex("00ff"), hex("00")), false);
  });
});

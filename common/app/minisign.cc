#include "common/app/minisign.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>
#include <vector>

#include "common/hash.h"

namespace herd::app {
namespace {

using Bytes = std::string;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// The lines of `text` without the newlines (CR tolerated), at most `max`.
std::vector<std::string> LinesOf(std::string_view text, size_t max) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size() && out.size() < max) {
    size_t nl = text.find('\n', at);
    if (nl == std::string_view::npos) nl = text.size();
    std::string line(text.substr(at, nl - at));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(std::move(line));
    at = nl + 1;
  }
  return out;
}

Result<Bytes> Blake2b512(std::string_view m) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  unsigned char out[64];
  unsigned len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_blake2b512(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), m.data(), m.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out, &len) != 1 || len != 64) {
    return Status::Internal("BLAKE2b-512 failed");
  }
  return Bytes(reinterpret_cast<char*>(out), 64);
}

Result<Bytes> Ed25519Sign(const SecretKey& k, std::string_view m) {
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, k.seed.data(), k.seed.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  unsigned char sig[64];
  size_t len = sizeof sig;
  if (!pkey || !ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(m.data()),
                     m.size()) != 1) {
    return Status::Internal("Ed25519 signing failed");
  }
  return Bytes(reinterpret_cast<char*>(sig), len);
}

bool Ed25519Verify(const PublicKey& k, std::string_view m, std::string_view sig) {
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, k.key.data(), k.key.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  return pkey && ctx && sig.size() == 64 &&
         EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), 64,
                          reinterpret_cast<const unsigned char*>(m.data()), m.size()) == 1;
}

template <size_t N>
void Put(Bytes& out, const std::array<uint8_t, N>& a) {
  out.append(reinterpret_cast<const char*>(a.data()), N);
}
template <size_t N>
void Take(std::string_view in, size_t at, std::array<uint8_t, N>* a) {
  std::memcpy(a->data(), in.data() + at, N);
}

// The base64 line after an "untrusted comment:" line, decoded to `size` bytes.
Result<Bytes> KeyBlob(std::string_view text, size_t size, const std::string& source,
                      const char* what) {
  auto lines = LinesOf(text, 4);
  size_t i = 0;
  if (!lines.empty() && lines[0].rfind("untrusted comment:", 0) == 0) i = 1;
  if (i >= lines.size()) return Status::Invalid(source + ": no " + what + " found");
  auto raw = Base64Decode(lines[i]);
  if (!raw || raw->size() != size || raw->compare(0, 2, "Ed") != 0) {
    return Status::Invalid(source + ":" + std::to_string(i + 1) + ": not a " + what);
  }
  return *raw;
}

}  // namespace

std::string KeyIdHex(const KeyId& id) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (size_t i = id.size(); i-- > 0;) {
    out.push_back(hex[id[i] >> 4]);
    out.push_back(hex[id[i] & 15]);
  }
  return out;
}

Result<SecretKey> GenerateKey() {
  SecretKey k;
  if (RAND_bytes(k.seed.data(), k.seed.size()) != 1 || RAND_bytes(k.id.data(), k.id.size()) != 1) {
    return Status::Internal("no randomness for a key");
  }
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, k.seed.data(), k.seed.size()));
  size_t len = k.pub.key.size();
  if (!pkey || EVP_PKEY_get_raw_public_key(pkey.get(), k.pub.key.data(), &len) != 1) {
    return Status::Internal("Ed25519 key generation failed");
  }
  k.pub.id = k.id;
  return k;
}

std::string FormatPublicKey(const PublicKey& k) {
  return "untrusted comment: minisign public key " + KeyIdHex(k.id) + "\n" + PublicKeyLine(k) +
         "\n";
}

std::string PublicKeyLine(const PublicKey& k) {
  Bytes raw = "Ed";
  Put(raw, k.id);
  Put(raw, k.key);
  return Base64Encode(raw);
}

std::string FormatSecretKey(const SecretKey& k) {
  Bytes raw = "Ed";
  Put(raw, k.id);
  Put(raw, k.seed);
  Put(raw, k.pub.key);
  return "untrusted comment: herd app secret key " + KeyIdHex(k.id) + "\n" + Base64Encode(raw) +
         "\n";
}

Result<PublicKey> ParsePublicKey(std::string_view text, const std::string& source) {
  auto raw = KeyBlob(text, 42, source, "minisign public key");
  if (!raw.ok()) return raw.status();
  PublicKey k;
  Take(*raw, 2, &k.id);
  Take(*raw, 10, &k.key);
  return k;
}

Result<SecretKey> ParseSecretKey(std::string_view text, const std::string& source) {
  auto raw = KeyBlob(text, 74, source, "herd app secret key (herd app keygen)");
  if (!raw.ok()) return raw.status();
  SecretKey k;
  Take(*raw, 2, &k.id);
  Take(*raw, 10, &k.seed);
  Take(*raw, 42, &k.pub.key);
  k.pub.id = k.id;
  return k;
}

Result<std::string> Sign(const SecretKey& k, std::string_view message,
                         const std::string& trusted_comment) {
  if (trusted_comment.find_first_of("\r\n") != std::string::npos) {
    return Status::Invalid("a trusted comment is one line");
  }
  auto hash = Blake2b512(message);
  if (!hash.ok()) return hash.status();
  auto sig = Ed25519Sign(k, *hash);
  if (!sig.ok()) return sig.status();
  auto global = Ed25519Sign(k, *sig + trusted_comment);
  if (!global.ok()) return global.status();
  Bytes blob = "ED";
  Put(blob, k.id);
  blob += *sig;
  return "untrusted comment: signature from herd app key " + KeyIdHex(k.id) + "\n" +
         Base64Encode(blob) + "\ntrusted comment: " + trusted_comment + "\n" +
         Base64Encode(*global) + "\n";
}

namespace {
struct ParsedSignature {
  bool prehashed = false;
  KeyId id{};
  Bytes sig, global;
  std::string trusted_comment;
};

Result<ParsedSignature> Parse(std::string_view text) {
  auto lines = LinesOf(text, 5);
  if (lines.size() < 4 || lines[0].rfind("untrusted comment:", 0) != 0 ||
      lines[2].rfind("trusted comment: ", 0) != 0) {
    return Status::Invalid(
        "not a minisign signature (four lines: untrusted comment, signature, "
        "trusted comment, global signature)");
  }
  auto blob = Base64Decode(lines[1]);
  auto global = Base64Decode(lines[3]);
  if (!blob || blob->size() != 74 || !global || global->size() != 64) {
    return Status::Invalid("minisign signature of the wrong size");
  }
  ParsedSignature p;
  if (blob->compare(0, 2, "ED") == 0) {
    p.prehashed = true;
  } else if (blob->compare(0, 2, "Ed") != 0) {
    return Status::Invalid("minisign signature of an unknown algorithm");
  }
  Take(*blob, 2, &p.id);
  p.sig = blob->substr(10);
  p.global = *global;
  p.trusted_comment = lines[2].substr(17);
  return p;
}
}  // namespace

Result<SignatureInfo> ReadSignature(std::string_view signature) {
  auto p = Parse(signature);
  if (!p.ok()) return p.status();
  return SignatureInfo{p->id, p->trusted_comment};
}

Result<SignatureInfo> Verify(const PublicKey& k, std::string_view message,
                             std::string_view signature) {
  auto p = Parse(signature);
  if (!p.ok()) return p.status();
  if (p->id != k.id) {
    return Status(StatusCode::kPermissionDenied,
                  "signed by key " + KeyIdHex(p->id) + ", not " + KeyIdHex(k.id));
  }
  Bytes signed_bytes;
  if (p->prehashed) {
    auto hash = Blake2b512(message);
    if (!hash.ok()) return hash.status();
    signed_bytes = *hash;
  } else {
    signed_bytes = Bytes(message);
  }
  if (!Ed25519Verify(k, signed_bytes, p->sig) ||
      !Ed25519Verify(k, p->sig + p->trusted_comment, p->global)) {
    return Status(StatusCode::kPermissionDenied, "bad signature by key " + KeyIdHex(k.id));
  }
  return SignatureInfo{p->id, p->trusted_comment};
}

}  // namespace herd::app

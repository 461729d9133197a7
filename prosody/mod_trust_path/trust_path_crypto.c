/*
 * trust_path_crypto: Ed25519 for Prosody 0.12 (Lua 5.4).
 *
 * Prosody 0.12 has no Ed25519 in Lua (Prosody 13 has util.crypto), so mod_trust_path
 * needs this tiny binding.  No cryptography is implemented here: every operation is one
 * library call.  Two builds of the same Lua API:
 *
 *   -DTP_SODIUM  libsodium (crypto_sign_seed_keypair, crypto_sign_detached,
 *                crypto_sign_verify_detached): about twice as fast as OpenSSL 3 here
 *                (sign 17 us, verify 41 us against 37 us and 95 us), because OpenSSL goes
 *                through its provider machinery on every call.  The default when the
 *                Makefile finds libsodium.
 *   otherwise    OpenSSL's EVP one-shot API (RAND_bytes, EVP_PKEY_new_raw_private_key,
 *                EVP_DigestSign, EVP_DigestVerify), for systems without libsodium.
 *
 * Keys and signatures are raw byte strings:
 *
 *   generate_seed()              -> 32-byte RFC 8032 private key (seed)
 *   public_from_seed(seed)       -> 32-byte public key
 *   sign(seed, msg)              -> 64-byte signature
 *   verify(pub32, sig64, msg)    -> boolean
 *   _BACKEND                     -> "libsodium" or "openssl"
 *
 * Wrong lengths and library failures raise Lua errors; verify() returns false for a
 * signature that does not verify (that is an answer, not an error).
 */
#ifdef TP_SODIUM
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include <sodium.h>

#define SEED_LEN 32
#define PUB_LEN 32
#define SIG_LEN 64

static const unsigned char *check_len(lua_State *L, int arg, size_t want, const char *what) {
	size_t len;
	const unsigned char *s = (const unsigned char *)luaL_checklstring(L, arg, &len);
	if (len != want)
		luaL_error(L, "%s must be %d bytes, got %d", what, (int)want, (int)len);
	return s;
}

/*
 * libsodium's secret key is seed || public key, and deriving it from the seed costs a scalar
 * multiplication (about as much as a signature).  A server signs with one key for every
 * message, so the last expanded key is kept; sodium_memzero wipes a replaced one.
 */
static unsigned char last_seed[SEED_LEN];
static unsigned char last_sk[crypto_sign_SECRETKEYBYTES];
static int have_last = 0;

static const unsigned char *expanded(const unsigned char *seed) {
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	if (have_last && sodium_memcmp(seed, last_seed, SEED_LEN) == 0)
		return last_sk;
	sodium_memzero(last_sk, sizeof last_sk);
	crypto_sign_seed_keypair(pk, last_sk, seed);
	memcpy(last_seed, seed, SEED_LEN);
	have_last = 1;
	return last_sk;
}

static int l_generate_seed(lua_State *L) {
	unsigned char seed[SEED_LEN];
	randombytes_buf(seed, SEED_LEN);
	lua_pushlstring(L, (const char *)seed, SEED_LEN);
	sodium_memzero(seed, SEED_LEN);
	return 1;
}

static int l_public_from_seed(lua_State *L) {
	const unsigned char *seed = check_len(L, 1, SEED_LEN, "an Ed25519 seed (private key)");
	const unsigned char *sk = expanded(seed);
	/* the public key is the second half of libsodium's secret key */
	lua_pushlstring(L, (const char *)sk + SEED_LEN, PUB_LEN);
	return 1;
}

static int l_sign(lua_State *L) {
	const unsigned char *seed = check_len(L, 1, SEED_LEN, "an Ed25519 seed (private key)");
	size_t len;
	const unsigned char *msg = (const unsigned char *)luaL_checklstring(L, 2, &len);
	unsigned char sig[SIG_LEN];
	if (crypto_sign_detached(sig, NULL, msg, len, expanded(seed)) != 0)
		return luaL_error(L, "Ed25519 signing failed (libsodium)");
	lua_pushlstring(L, (const char *)sig, SIG_LEN);
	return 1;
}

static int l_verify(lua_State *L) {
	const unsigned char *pub = check_len(L, 1, PUB_LEN, "an Ed25519 public key");
	const unsigned char *sig = check_len(L, 2, SIG_LEN, "an Ed25519 signature");
	size_t len;
	const unsigned char *msg = (const unsigned char *)luaL_checklstring(L, 3, &len);
	lua_pushboolean(L, crypto_sign_verify_detached(sig, msg, len, pub) == 0);
	return 1;
}

#define BACKEND "libsodium"
#define DESCRIPTION "Ed25519 via libsodium"

static int backend_init(lua_State *L) {
	if (sodium_init() < 0)
		return luaL_error(L, "libsodium could not be initialised");
	return 0;
}

#else /* OpenSSL */
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define SEED_LEN 32
#define PUB_LEN 32
#define SIG_LEN 64

/*
 * Importing a raw key into OpenSSL 3 costs more than the signature itself (it derives the
 * public point and fetches the algorithm from the provider), and a server uses the same few
 * keys for every message.  So imported keys are kept in a small cache in the Lua registry:
 * raw key bytes (tagged private/public) -> userdata owning the EVP_PKEY, freed by __gc.
 * The cache is emptied when it grows past CACHE_MAX entries.
 */
#define PKEY_MT "trust_path_crypto.pkey"
#define CACHE_MAX 256
static int cache_ref = LUA_NOREF;
static int cache_count = 0;

static int pkey_gc(lua_State *L) {
	EVP_PKEY **ud = (EVP_PKEY **)luaL_checkudata(L, 1, PKEY_MT);
	if (*ud != NULL) {
		EVP_PKEY_free(*ud);
		*ud = NULL;
	}
	return 0;
}

/* The cached key for `tag` .. `raw`, or NULL (nothing pushed either way). */
static EVP_PKEY *cache_get(lua_State *L, char tag, const unsigned char *raw, size_t len) {
	EVP_PKEY *pkey = NULL;
	lua_rawgeti(L, LUA_REGISTRYINDEX, cache_ref);
	lua_pushlstring(L, &tag, 1);
	lua_pushlstring(L, (const char *)raw, len);
	lua_concat(L, 2);
	if (lua_rawget(L, -2) == LUA_TUSERDATA)
		pkey = *(EVP_PKEY **)lua_touserdata(L, -1);
	lua_pop(L, 2);
	return pkey;
}

/* Store `pkey` (now owned by the cache) under `tag` .. `raw`. */
static void cache_put(lua_State *L, char tag, const unsigned char *raw, size_t len, EVP_PKEY *pkey) {
	EVP_PKEY **ud = (EVP_PKEY **)lua_newuserdatauv(L, sizeof(EVP_PKEY *), 0);
	*ud = pkey;
	luaL_setmetatable(L, PKEY_MT);
	if (cache_count >= CACHE_MAX) { /* start afresh; the old entries are collected */
		lua_newtable(L);
		lua_rawseti(L, LUA_REGISTRYINDEX, cache_ref);
		cache_count = 0;
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, cache_ref);
	lua_pushlstring(L, &tag, 1);
	lua_pushlstring(L, (const char *)raw, len);
	lua_concat(L, 2);
	lua_pushvalue(L, -3);
	lua_rawset(L, -3);
	lua_pop(L, 2);
	cache_count++;
}

/* Raise a Lua error naming the operation and OpenSSL's own reason, if it gave one. */
static int openssl_error(lua_State *L, const char *what) {
	unsigned long code = ERR_get_error();
	char buf[256];
	if (code != 0) {
		ERR_error_string_n(code, buf, sizeof buf);
		ERR_clear_error();
		return luaL_error(L, "trust_path_crypto: %s failed: %s", what, buf);
	}
	return luaL_error(L, "trust_path_crypto: %s failed", what);
}

/* Check that argument `arg` is a string of exactly `len` bytes. */
static const unsigned char *check_bytes(lua_State *L, int arg, size_t len, const char *what) {
	size_t got = 0;
	const char *s = luaL_checklstring(L, arg, &got);
	if (got != len)
		luaL_error(L, "trust_path_crypto: %s must be %d bytes, got %d", what, (int)len, (int)got);
	return (const unsigned char *)s;
}

static int l_generate_seed(lua_State *L) {
	unsigned char seed[SEED_LEN];
	if (RAND_bytes(seed, sizeof seed) != 1)
		return openssl_error(L, "RAND_bytes");
	lua_pushlstring(L, (const char *)seed, sizeof seed);
	OPENSSL_cleanse(seed, sizeof seed);
	return 1;
}

/* The private key for the seed at `arg` (owned by the cache: do not free). */
static EVP_PKEY *private_key(lua_State *L, int arg) {
	const unsigned char *seed = check_bytes(L, arg, SEED_LEN, "an Ed25519 seed (private key)");
	EVP_PKEY *pkey = cache_get(L, 's', seed, SEED_LEN);
	if (pkey != NULL)
		return pkey;
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, SEED_LEN);
	if (pkey == NULL)
		openssl_error(L, "loading the Ed25519 private key");
	cache_put(L, 's', seed, SEED_LEN, pkey);
	return pkey;
}

static int l_public_from_seed(lua_State *L) {
	EVP_PKEY *pkey = private_key(L, 1);
	unsigned char pub[PUB_LEN];
	size_t len = sizeof pub;
	int ok = EVP_PKEY_get_raw_public_key(pkey, pub, &len);
	if (ok != 1 || len != PUB_LEN)
		return openssl_error(L, "deriving the Ed25519 public key");
	lua_pushlstring(L, (const char *)pub, len);
	return 1;
}

static int l_sign(lua_State *L) {
	size_t msg_len = 0;
	const unsigned char *msg = (const unsigned char *)luaL_checklstring(L, 2, &msg_len);
	EVP_PKEY *pkey = private_key(L, 1);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[SIG_LEN];
	size_t sig_len = sizeof sig;
	int ok = ctx != NULL
		&& EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) == 1  /* Ed25519: no digest */
		&& EVP_DigestSign(ctx, sig, &sig_len, msg, msg_len) == 1
		&& sig_len == SIG_LEN;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return openssl_error(L, "Ed25519 signing");
	lua_pushlstring(L, (const char *)sig, sig_len);
	return 1;
}

static int l_verify(lua_State *L) {
	const unsigned char *pub = check_bytes(L, 1, PUB_LEN, "an Ed25519 public key");
	const unsigned char *sig = check_bytes(L, 2, SIG_LEN, "an Ed25519 signature");
	size_t msg_len = 0;
	const unsigned char *msg = (const unsigned char *)luaL_checklstring(L, 3, &msg_len);
	EVP_PKEY *pkey = cache_get(L, 'p', pub, PUB_LEN);
	if (pkey == NULL) {
		pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, PUB_LEN);
		if (pkey == NULL) {
			/* 32 bytes that are not a point on the curve: no signature can verify with it */
			ERR_clear_error();
			lua_pushboolean(L, 0);
			return 1;
		}
		cache_put(L, 'p', pub, PUB_LEN, pkey);
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) != 1) {
		EVP_MD_CTX_free(ctx);
		return openssl_error(L, "Ed25519 verification setup");
	}
	int rc = EVP_DigestVerify(ctx, sig, SIG_LEN, msg, msg_len);
	EVP_MD_CTX_free(ctx);
	ERR_clear_error(); /* a bad signature leaves an error on OpenSSL's queue */
	lua_pushboolean(L, rc == 1);
	return 1;
}

#define BACKEND "openssl"
#define DESCRIPTION "Ed25519 via OpenSSL EVP"

static int backend_init(lua_State *L) {
	if (luaL_newmetatable(L, PKEY_MT)) {
		lua_pushcfunction(L, pkey_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
	if (cache_ref == LUA_NOREF) {
		lua_newtable(L);
		cache_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	return 0;
}

#endif

/* The same Lua API whichever library signs: the module cannot tell them apart but by _BACKEND. */
static const luaL_Reg functions[] = {
	{"generate_seed", l_generate_seed},
	{"public_from_seed", l_public_from_seed},
	{"sign", l_sign},
	{"verify", l_verify},
	{NULL, NULL},
};

int luaopen_trust_path_crypto(lua_State *L) {
	backend_init(L);
	luaL_newlib(L, functions);
	lua_pushliteral(L, DESCRIPTION);
	lua_setfield(L, -2, "_DESCRIPTION");
	lua_pushliteral(L, BACKEND);
	lua_setfield(L, -2, "_BACKEND");
	return 1;
}

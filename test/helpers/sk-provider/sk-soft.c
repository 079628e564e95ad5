/*
 * A software FIDO "security key" for the tests: an OpenSSH SecurityKeyProvider (sk-api.h, API
 * version 0x000a0000, as in OpenSSH 8.9 to 9.x) so that the stock ssh-keygen enrols ed25519-sk
 * and ecdsa-sk keys and the stock ssh signs with them, with no hardware. Modelled on
 * openssh-portable's regress/misc/sk-dummy, written against OpenSSL 3's EVP interface.
 *
 * The key handle carries the private key (this is a test device, not a secure one). The signed
 * data is exactly PROTOCOL.u2f's: SHA-256(application) || flags || counter (uint32 BE) ||
 * SHA-256(message).
 *
 * It can be made to misbehave, to produce the hostile cases with the stock client:
 *   GH_SK_COUNTER_FILE  where the signature counter lives (read, incremented, written under flock)
 *   GH_SK_FIXED_COUNTER sign with this counter instead (a cloned key, a replay)
 *   GH_SK_REPEAT_ONCE=1 the next signature counts on, the one after repeats its counter (a clone
 *                       used for the second hop of ssh -J); a marker file next to the counter
 *   GH_SK_NO_UP=1       clear the user-presence flag (0x01) in the response
 *   GH_SK_UV=1          set the user-verification flag (0x04), as a key that took a PIN would
 *   GH_SK_NO_UV=1       clear the user-verification flag
 *   GH_SK_APPLICATION   sign for this application instead of the key's own
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/file.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/core_names.h>

#define SSH_SK_VERSION_MAJOR 0x000a0000
#define SSH_SK_ECDSA 0x00
#define SSH_SK_ED25519 0x01
#define SSH_SK_ERR_GENERAL -1
#define SSH_SK_ERR_UNSUPPORTED -2
#define FLAG_UP 0x01
#define FLAG_UV 0x04

struct sk_enroll_response {
	uint8_t flags;
	uint8_t *public_key;
	size_t public_key_len;
	uint8_t *key_handle;
	size_t key_handle_len;
	uint8_t *signature;
	size_t signature_len;
	uint8_t *attestation_cert;
	size_t attestation_cert_len;
	uint8_t *authdata;
	size_t authdata_len;
};

struct sk_sign_response {
	uint8_t flags;
	uint32_t counter;
	uint8_t *sig_r;
	size_t sig_r_len;
	uint8_t *sig_s;
	size_t sig_s_len;
};

struct sk_resident_key;
struct sk_option {
	char *name;
	char *value;
	uint8_t required;
};

uint32_t sk_api_version(void);
int sk_enroll(uint32_t alg, const uint8_t *challenge, size_t challenge_len,
    const char *application, uint8_t flags, const char *pin,
    struct sk_option **options, struct sk_enroll_response **enroll_response);
int sk_sign(uint32_t alg, const uint8_t *data, size_t data_len,
    const char *application, const uint8_t *key_handle, size_t key_handle_len,
    uint8_t flags, const char *pin, struct sk_option **options,
    struct sk_sign_response **sign_response);
int sk_load_resident_keys(const char *pin, struct sk_option **options,
    struct sk_resident_key ***rks, size_t *nrks);

uint32_t
sk_api_version(void)
{
	return SSH_SK_VERSION_MAJOR;
}

static int
unknown_required_option(struct sk_option **options)
{
	size_t i;

	for (i = 0; options != NULL && options[i] != NULL; i++)
		if (options[i]->required)
			return 1;
	return 0;
}

static uint8_t *
dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);

	if (q != NULL && n)
		memcpy(q, p, n);
	return q;
}

static int
enroll_ed25519(struct sk_enroll_response *r)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	uint8_t pub[32], priv[32];
	size_t publen = sizeof(pub), privlen = sizeof(priv);
	int ret = -1;

	if (pk == NULL)
		return -1;
	if (EVP_PKEY_get_raw_public_key(pk, pub, &publen) == 1 &&
	    EVP_PKEY_get_raw_private_key(pk, priv, &privlen) == 1 &&
	    (r->public_key = dup_bytes(pub, publen)) != NULL &&
	    (r->key_handle = dup_bytes(priv, privlen)) != NULL) {
		r->public_key_len = publen;
		r->key_handle_len = privlen;
		ret = 0;
	}
	OPENSSL_cleanse(priv, sizeof(priv));
	EVP_PKEY_free(pk);
	return ret;
}

static int
enroll_ecdsa(struct sk_enroll_response *r)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	uint8_t pub[65];
	size_t publen = 0;
	BIO *bio = NULL;
	char *pem;
	long pemlen;
	int ret = -1;

	if (pk == NULL)
		return -1;
	if (EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub), &publen) != 1 || publen != 65)
		goto out;
	/* The key handle is the PEM private key, as in sk-dummy. */
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) ||
	    (pemlen = BIO_get_mem_data(bio, &pem)) <= 0)
		goto out;
	if ((r->public_key = dup_bytes(pub, publen)) == NULL ||
	    (r->key_handle = dup_bytes((uint8_t *)pem, (size_t)pemlen)) == NULL)
		goto out;
	r->public_key_len = publen;
	r->key_handle_len = (size_t)pemlen;
	ret = 0;
 out:
	BIO_free(bio);
	EVP_PKEY_free(pk);
	return ret;
}

int
sk_enroll(uint32_t alg, const uint8_t *challenge, size_t challenge_len,
    const char *application, uint8_t flags, const char *pin,
    struct sk_option **options, struct sk_enroll_response **enroll_response)
{
	struct sk_enroll_response *r;
	int ok;

	(void)challenge; (void)challenge_len; (void)application; (void)pin;
	if (enroll_response == NULL)
		return SSH_SK_ERR_GENERAL;
	*enroll_response = NULL;
	if (unknown_required_option(options))
		return SSH_SK_ERR_UNSUPPORTED;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return SSH_SK_ERR_GENERAL;
	r->flags = flags;
	if (alg == SSH_SK_ED25519)
		ok = enroll_ed25519(r);
	else if (alg == SSH_SK_ECDSA)
		ok = enroll_ecdsa(r);
	else
		ok = -1;
	/* No attestation: an empty signature, as sk-dummy returns. */
	if (ok != 0 || (r->signature = calloc(1, 1)) == NULL) {
		free(r->public_key);
		free(r->key_handle);
		free(r);
		return SSH_SK_ERR_GENERAL;
	}
	r->signature_len = 0;
	*enroll_response = r;
	return 0;
}

static int env_on(const char *name);

/* The next counter: fixed, or one more than the last one kept in GH_SK_COUNTER_FILE. */
static uint32_t
next_counter(void)
{
	const char *fixed = getenv("GH_SK_FIXED_COUNTER");
	const char *file = getenv("GH_SK_COUNTER_FILE");
	char buf[32], marker[4096];
	int repeat = 0, mfd;
	unsigned long v = 0;
	ssize_t n;
	int fd;

	if (fixed != NULL && *fixed)
		return (uint32_t)strtoul(fixed, NULL, 10);
	if (file == NULL || !*file)
		return (uint32_t)time(NULL);
	if ((fd = open(file, O_RDWR | O_CREAT, 0600)) < 0)
		return (uint32_t)time(NULL);
	flock(fd, LOCK_EX);
	if ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		buf[n] = '\0';
		v = strtoul(buf, NULL, 10);
	}
	if (env_on("GH_SK_REPEAT_ONCE") && (size_t)snprintf(marker, sizeof(marker), "%s.repeat", file) < sizeof(marker)) {
		if (unlink(marker) == 0)
			repeat = 1;
		else if ((mfd = open(marker, O_WRONLY | O_CREAT, 0600)) >= 0)
			close(mfd);
	}
	if (repeat) {
		flock(fd, LOCK_UN);
		close(fd);
		return (uint32_t)v;
	}
	v++;
	n = snprintf(buf, sizeof(buf), "%lu\n", v);
	if (ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0 && write(fd, buf, (size_t)n) != n)
		v = (unsigned long)time(NULL);
	flock(fd, LOCK_UN);
	close(fd);
	return (uint32_t)v;
}

static int
env_on(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && strcmp(v, "1") == 0;
}

int
sk_sign(uint32_t alg, const uint8_t *data, size_t data_len,
    const char *application, const uint8_t *key_handle, size_t key_handle_len,
    uint8_t flags, const char *pin, struct sk_option **options,
    struct sk_sign_response **sign_response)
{
	struct sk_sign_response *r = NULL;
	const char *app = getenv("GH_SK_APPLICATION");
	uint8_t signbuf[32 + 1 + 4 + 32];
	EVP_PKEY *pk = NULL;
	EVP_MD_CTX *md = NULL;
	BIO *bio = NULL;
	uint8_t *der = NULL;
	const uint8_t *p;
	ECDSA_SIG *es = NULL;
	const BIGNUM *br, *bs;
	size_t siglen = 0;
	int ret = SSH_SK_ERR_GENERAL;

	if (sign_response == NULL)
		return SSH_SK_ERR_GENERAL;
	*sign_response = NULL;
	if (unknown_required_option(options))
		return SSH_SK_ERR_UNSUPPORTED;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return SSH_SK_ERR_GENERAL;
	if (app == NULL || !*app)
		app = application;
	r->flags = flags;
	if (pin != NULL && *pin)
		r->flags |= FLAG_UV;
	if (env_on("GH_SK_UV"))
		r->flags |= FLAG_UV;
	if (env_on("GH_SK_NO_UV"))
		r->flags &= ~FLAG_UV;
	if (env_on("GH_SK_NO_UP"))
		r->flags &= ~FLAG_UP;
	r->counter = next_counter();

	SHA256((const uint8_t *)app, strlen(app), signbuf);
	signbuf[32] = r->flags;
	signbuf[33] = (r->counter >> 24) & 0xff;
	signbuf[34] = (r->counter >> 16) & 0xff;
	signbuf[35] = (r->counter >> 8) & 0xff;
	signbuf[36] = r->counter & 0xff;
	SHA256(data, data_len, signbuf + 37);

	if ((md = EVP_MD_CTX_new()) == NULL)
		goto out;
	if (alg == SSH_SK_ED25519) {
		if (key_handle_len != 32 ||
		    (pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, key_handle, key_handle_len)) == NULL ||
		    EVP_DigestSignInit(md, NULL, NULL, NULL, pk) != 1 ||
		    (r->sig_r = malloc(64)) == NULL)
			goto out;
		siglen = 64;
		if (EVP_DigestSign(md, r->sig_r, &siglen, signbuf, sizeof(signbuf)) != 1 || siglen != 64)
			goto out;
		r->sig_r_len = siglen;
	} else if (alg == SSH_SK_ECDSA) {
		if ((bio = BIO_new_mem_buf(key_handle, (int)key_handle_len)) == NULL ||
		    (pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL ||
		    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk) != 1 ||
		    EVP_DigestSign(md, NULL, &siglen, signbuf, sizeof(signbuf)) != 1 ||
		    (der = malloc(siglen)) == NULL ||
		    EVP_DigestSign(md, der, &siglen, signbuf, sizeof(signbuf)) != 1)
			goto out;
		p = der;
		if ((es = d2i_ECDSA_SIG(NULL, &p, (long)siglen)) == NULL)
			goto out;
		ECDSA_SIG_get0(es, &br, &bs);
		r->sig_r_len = (size_t)BN_num_bytes(br);
		r->sig_s_len = (size_t)BN_num_bytes(bs);
		if ((r->sig_r = calloc(1, r->sig_r_len ? r->sig_r_len : 1)) == NULL ||
		    (r->sig_s = calloc(1, r->sig_s_len ? r->sig_s_len : 1)) == NULL)
			goto out;
		BN_bn2bin(br, r->sig_r);
		BN_bn2bin(bs, r->sig_s);
	} else {
		ret = SSH_SK_ERR_UNSUPPORTED;
		goto out;
	}
	*sign_response = r;
	r = NULL;
	ret = 0;
 out:
	OPENSSL_cleanse(signbuf, sizeof(signbuf));
	ECDSA_SIG_free(es);
	free(der);
	BIO_free(bio);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	if (r != NULL) {
		free(r->sig_r);
		free(r->sig_s);
		free(r);
	}
	return ret;
}

int
sk_load_resident_keys(const char *pin, struct sk_option **options,
    struct sk_resident_key ***rks, size_t *nrks)
{
	(void)pin; (void)options; (void)rks; (void)nrks;
	return SSH_SK_ERR_UNSUPPORTED;
}

/* test_nn_checkpoint.c - safetensors: a bit-exact round trip under the
 * state_dict names, the exact byte layout, and broken files (written to a
 * temporary directory) rejected with an error naming the fault, leaving the
 * model untouched. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"

static char dir[64], path[128];

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/tapegrad_nn_ckpt_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* A small model with a conv-like weight, a bias, a float64 parameter and an
 * int64 buffer, filled with awkward values (subnormals, -0, extremes). */
static nn_model *small_model(uint64_t seed) {
    nn_model *m = nn_model_new(DTYPE_F32, seed);
    tensor *w = nn_model_add_param(m, "c1.weight", tensor_zeros(DTYPE_F32, SHAPE(2, 1, 3, 3)));
    tensor *b = nn_model_add_param(m, "c1.bias", tensor_zeros(DTYPE_F32, SHAPE(2)));
    tensor *d = nn_model_add_param(m, "f3.weight", tensor_zeros(DTYPE_F64, SHAPE(3, 2)));
    tensor *n = nn_model_add_buffer(m, "bn.num_batches_tracked", tensor_zeros(DTYPE_I64, 0, NULL));
    ck_assert_ptr_nonnull(n);
    nn_init_kaiming_uniform(w, &m->rng, sqrt(5.0), NN_FAN_IN);
    float odd[2] = {1e-40f, -0.0f};
    memcpy(b->data, odd, sizeof odd);
    nn_init_normal(d, &m->rng, 0, 1e300);
    ((int64_t *)n->data)[0] = 937;
    return m;
}

static void write_bytes(const char *p, const void *bytes, size_t n) {
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

/* header_json padded to 8, then data bytes. */
static void write_st(const char *header_json, const void *data, size_t n) {
    char h[1024];
    size_t hl = strlen(header_json);
    memcpy(h, header_json, hl);
    while ((8 + hl) % 8) h[hl++] = ' ';
    unsigned char buf[2048];
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, h, hl);
    memcpy(buf + 8 + hl, data, n);
    write_bytes(path, buf, 8 + hl + n);
}

static void states_equal(const nn_model *a, const nn_model *b) {
    ck_assert_int_eq(nn_model_state_count(a), nn_model_state_count(b));
    for (int i = 0; i < nn_model_state_count(a); i++) {
        const char *na, *nb;
        tensor *ta, *tb;
        nn_model_state_at(a, i, &na, &ta);
        nn_model_state_at(b, i, &nb, &tb);
        ck_assert_str_eq(na, nb);
        ck_assert(tensor_same_shape(ta, tb));
        ck_assert_mem_eq(ta->data, tb->data, (size_t)ta->size * (ta->dtype == DTYPE_F32 ? 4 : 8));
    }
}

START_TEST(test_checkpoint_round_trip_bit_exact) {
    make_dir();
    nn_model *a = small_model(1), *b = small_model(2);
    ck_assert_int_eq(nn_model_save(a, path), 0);
    ck_assert_int_eq(nn_model_load(b, path), 0);
    states_equal(a, b);
    nn_model_free(a);
    nn_model_free(b);
    remove_dir();
}
END_TEST

/* The exact bytes: length 8-aligned, JSON with names, dtypes, shapes and
 * contiguous offsets, data little-endian at 8 + N. */
START_TEST(test_checkpoint_layout_is_safetensors) {
    make_dir();
    tensor *t = tensor_from_doubles(DTYPE_F32, SHAPE(2), (double[]){1.5, -2});
    tensor *u = tensor_from_doubles(DTYPE_I64, SHAPE(1), (double[]){258});
    const char *names[2] = {"f1.bias", "n"};
    tensor *ts[2] = {t, u};
    ck_assert_int_eq(nn_safetensors_save(path, names, ts, 2), 0);
    FILE *f = fopen(path, "rb");
    unsigned char buf[512];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)buf[i] << (8 * i);
    ck_assert_uint_eq((8 + hl) % 8, 0);
    ck_assert_uint_eq(n, 8 + hl + 8 + 8);
    const char *json = "{\"f1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"n\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]}}";
    ck_assert_mem_eq(buf + 8, json, strlen(json));
    for (size_t i = strlen(json); i < hl; i++) ck_assert_int_eq(buf[8 + i], ' ');
    const unsigned char data[16] = {0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0, 2, 1, 0, 0, 0, 0, 0, 0};
    ck_assert_mem_eq(buf + 8 + hl, data, 16);
    tensor_free(t);
    tensor_free(u);
    remove_dir();
}
END_TEST

/* Saving over an old checkpoint replaces it whole and leaves no temporary
 * file behind. */
START_TEST(test_checkpoint_save_replaces_atomically) {
    make_dir();
    write_bytes(path, "old", 3);
    nn_model *a = small_model(1);
    ck_assert_int_eq(nn_model_save(a, path), 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test $(ls '%s' | wc -l) -eq 1", dir);
    ck_assert_int_eq(system(cmd), 0);
    nn_model *b = small_model(3);
    ck_assert_int_eq(nn_model_load(b, path), 0);
    states_equal(a, b);
    /* a directory that does not exist: error, nothing written */
    tapegrad_error_clear();
    ck_assert_int_eq(nn_model_save(a, "/nonexistent/dir/m.safetensors"), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "/nonexistent/dir/m.safetensors"));
    tapegrad_error_clear();
    nn_model_free(a);
    nn_model_free(b);
    remove_dir();
}
END_TEST

/* Float64 in the file loads into a float32 tensor (converted). */
START_TEST(test_checkpoint_f64_loads_into_f32) {
    make_dir();
    tensor *d = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){0.25, -3});
    tensor *f = tensor_zeros(DTYPE_F32, SHAPE(2));
    const char *name = "w";
    ck_assert_int_eq(nn_safetensors_save(path, &name, &d, 1), 0);
    ck_assert_int_eq(nn_safetensors_load(path, &name, &f, 1), 0);
    ck_assert_tensor(f, ((double[]){0.25, -3}), 0);
    tensor_free(d);
    tensor_free(f);
    remove_dir();
}
END_TEST

/* Loads path into a one-tensor [2] float32 target named "w", which must fail
 * and leave the target's values; the error goes to err. */
static void load_rejected(char *err, size_t len) {
    tensor *t = tensor_from_doubles(DTYPE_F32, SHAPE(2), (double[]){7, 8});
    const char *name = "w";
    tapegrad_error_clear();
    ck_assert_int_eq(nn_safetensors_load(path, &name, &t, 1), -1);
    ck_assert_ptr_nonnull(tapegrad_error());
    snprintf(err, len, "%s", tapegrad_error());
    ck_assert_tensor(t, ((double[]){7, 8}), 0);
    tapegrad_error_clear();
    tensor_free(t);
}

/* The error names the file and contains fault. */
static void expect_rejected(const char *fault) {
    char e[512];
    load_rejected(e, sizeof e);
    ck_assert_msg(strstr(e, path) && strstr(e, fault), "error \"%s\" should say %s", e, fault);
}

/* The error is exactly "<path>: msg". */
static void expect_rejected_exactly(const char *msg) {
    char e[512], want[512];
    load_rejected(e, sizeof e);
    snprintf(want, sizeof want, "%s: %s", path, msg);
    ck_assert_str_eq(e, want);
}

/* The error is "<path>: malformed safetensors header: what at header byte at". */
static void expect_malformed(const char *what, int at) {
    char msg[256];
    snprintf(msg, sizeof msg, "malformed safetensors header: %s at header byte %d", what, at);
    expect_rejected_exactly(msg);
}

/* The header bytes h (n of them, unpadded) and data; for bytes a C string
 * cannot hold and for header lengths write_st would not write. */
static void write_raw_header(const char *h, size_t n, const void *data, size_t dn) {
    unsigned char buf[2048];
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, h, n);
    memcpy(buf + 8 + n, data, dn);
    write_bytes(path, buf, 8 + n + dn);
}

static const float two[2] = {1, 2};

START_TEST(test_safetensors_truncated_rejected) {
    make_dir();
    write_bytes(path, "\x10\0\0", 3);
    expect_rejected("truncated: 3 bytes, a safetensors file starts with an 8-byte header length");
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", two, 4);
    expect_rejected("tensor \"w\": data_offsets [0, 8] outside the 4 data bytes");
    remove_dir();
}
END_TEST

START_TEST(test_safetensors_header_length_beyond_file_rejected) {
    make_dir();
    unsigned char b[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(path, b, sizeof b);
    expect_rejected("header length 65535 does not fit the file's 16 bytes");
    /* the reference reader's limit, 10^8, comes first whatever the file's size */
    b[0] = 0x01, b[1] = 0xe1, b[2] = 0xf5, b[3] = 0x05; /* 100000001 */
    write_bytes(path, b, sizeof b);
    expect_rejected_exactly(
        "header length 100000001 is over the format's limit of 100000000 bytes");
    remove_dir();
}
END_TEST

START_TEST(test_safetensors_bad_json_rejected) {
    make_dir();
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", two, 8);
    expect_rejected(": malformed safetensors header: ");
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,],\"data_offsets\":[0,8]}}", two, 8);
    expect_rejected(": malformed safetensors header: ");
    write_st("{\"w\" {\"dtype\":\"F32\"}}", two, 8);
    expect_rejected("expected ':'");
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", two, 8);
    expect_rejected("non-negative integer");
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", two, 8);
    expect_rejected(": incomplete header entry (needs dtype, shape and data_offsets): \"w\" has no "
                    "data_offsets");
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
             "\"data_offsets\":[0,8]}}", two, 8);
    expect_rejected("tensor \"w\": shape too large");
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", two, 8);
    expect_rejected("text after the closing brace");
    remove_dir();
}
END_TEST

START_TEST(test_safetensors_dtype_and_shape_checked) {
    make_dir();
    write_st("{\"w\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", two, 4);
    expect_rejected("dtype BF16; supported are F32, F64, I64 and BOOL");
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}", two, 8);
    expect_rejected("tensor \"w\" has shape [1,2] in the file but [2] in the model");
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", two, 8);
    expect_rejected("span 8 bytes but shape and dtype need 12");
    write_st("{\"w\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", (int64_t[]){1, 2},
             16);
    expect_rejected("tensor \"w\" is int64 in the file but float32 in the model");
    remove_dir();
}
END_TEST

/* PyTorch saves a torch.bool tensor (a causal mask buffer) as BOOL, one byte
 * per element: it loads as 0 and 1 into int64 and float tensors alike; a
 * byte other than 0 or 1, or a span that is not one byte per element, is
 * refused naming the tensor, and the target keeps its values. */
START_TEST(test_safetensors_bool_loads_into_int64_and_float) {
    make_dir();
    const unsigned char tril[9] = {1, 0, 0, 1, 1, 0, 1, 1, 1}; /* 3x3, true on and below the diagonal */
    write_st("{\"m\":{\"dtype\":\"BOOL\",\"shape\":[3,3],\"data_offsets\":[0,9]}}", tril, 9);
    const char *name = "m";
    tensor *i64 = tensor_full(DTYPE_I64, SHAPE(3, 3), 7), *f32 = tensor_full(DTYPE_F32, SHAPE(3, 3), 7),
           *f64 = tensor_full(DTYPE_F64, SHAPE(3, 3), 7);
    ck_assert_int_eq(nn_safetensors_load(path, &name, &i64, 1), 0);
    ck_assert_int_eq(nn_safetensors_load(path, &name, &f32, 1), 0);
    ck_assert_int_eq(nn_safetensors_load(path, &name, &f64, 1), 0);
    for (int k = 0; k < 9; k++) {
        ck_assert_int_eq(((int64_t *)i64->data)[k], tril[k]);
        ck_assert(((float *)f32->data)[k] == tril[k]);
        ck_assert(((double *)f64->data)[k] == tril[k]);
    }
    /* beside other tensors, in a model's state (the GPT's blocks.N.mask) */
    nn_model *m = nn_model_new(DTYPE_F32, 1);
    tensor *w = nn_model_add_param(m, "w", tensor_zeros(DTYPE_F32, SHAPE(2)));
    tensor *mask = nn_model_add_buffer(m, "mask", tensor_zeros(DTYPE_I64, SHAPE(3, 3)));
    ck_assert(w && mask);
    unsigned char data[17];
    memcpy(data, tril, 9);
    memcpy(data + 9, two, 8);
    write_st("{\"mask\":{\"dtype\":\"BOOL\",\"shape\":[3,3],\"data_offsets\":[0,9]},"
             "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[9,17]}}",
             data, 17);
    ck_assert_msg(nn_model_load(m, path) == 0, "%s", tapegrad_error());
    ck_assert_tensor(w, ((double[]){1, 2}), 0);
    for (int k = 0; k < 9; k++) ck_assert_int_eq(((int64_t *)mask->data)[k], tril[k]);
    nn_model_free(m);
    /* a byte that is no bool, and a BOOL of the wrong span */
    write_st("{\"w\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}", (unsigned char[]){1, 2}, 2);
    expect_rejected_exactly("tensor \"w\" is BOOL but element 1 is the byte 2 (a BOOL byte is 0 or 1)");
    write_st("{\"w\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,8]}}", two, 8);
    expect_rejected("tensor \"w\": data_offsets span 8 bytes but shape and dtype need 2");
    write_st("{\"w\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}", (unsigned char[]){0, 1}, 2);
    tensor *t = tensor_from_doubles(DTYPE_F32, SHAPE(2), (double[]){7, 8});
    ck_assert_int_eq(nn_safetensors_load(path, &name, &t, 1), -1); /* the name is w, not m */
    tapegrad_error_clear();
    name = "w";
    ck_assert_int_eq(nn_safetensors_load(path, &name, &t, 1), 0);
    ck_assert_tensor(t, ((double[]){0, 1}), 0);
    tensor_free(t), tensor_free(i64), tensor_free(f32), tensor_free(f64);
    remove_dir();
}
END_TEST

START_TEST(test_safetensors_names_and_overlap_checked) {
    make_dir();
    write_st("{\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", two, 8);
    expect_rejected("tensor \"w\" is missing from the file");
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             two, 8);
    expect_rejected_exactly(
        "tensors \"w\" and \"x\" overlap in the data (data_offsets [0, 8] and [4, 8])");
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
             (float[]){1, 2, 3}, 12);
    expect_rejected("the file has tensor \"x\", which the model does not");
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             two, 8);
    expect_rejected("tensor \"w\" appears twice");
    remove_dir();
}
END_TEST

/* The format indexes every data byte: sorted by offset, the tensors' ranges
 * begin at 0, each where the last ended, and the last ends at the data's end. */
START_TEST(test_safetensors_offsets_must_tile_the_data) {
    make_dir();
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", two, 8);
    expect_rejected_exactly(
        "tensor \"w\": data_offsets [8, 0] are reversed (the end comes before the begin)");
    /* 4 bytes between w and x; found before x, unknown to the model, is */
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
             (float[]){1, 2, 0, 3}, 16);
    expect_rejected_exactly(
        "data bytes [8, 12) belong to no tensor: a gap between \"w\" and \"x\"");
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
             (float[]){0, 1, 2}, 12);
    expect_rejected_exactly("data bytes [0, 4) belong to no tensor: a gap before \"w\", the first");
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", (float[]){1, 2, 0},
             12);
    expect_rejected_exactly(
        "data bytes [8, 12) belong to no tensor: extra bytes after \"w\", the last");
    write_st("{}", two, 8);
    expect_rejected_exactly("data bytes [0, 8) belong to no tensor: the header lists none");
    /* a zero-size tensor takes no room, but not room inside another's */
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
             two, 8);
    expect_rejected_exactly(
        "tensors \"w\" and \"z\" overlap in the data (data_offsets [0, 8] and [4, 4])");
    remove_dir();
}
END_TEST

/* What the safetensors library and PyTorch-compatible writers produce loads:
 * JSON with whitespace and __metadata__, the tensors listed in one order and
 * laid out in another, a zero-size tensor, no padding at all. */
START_TEST(test_safetensors_any_order_and_layout_accepted) {
    make_dir();
    const char *h = "{\n  \"__metadata__\": {\"format\": \"pt\"},\n"
                    "  \"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [16, 24]},\n"
                    "  \"e\": {\"shape\": [0, 3], \"data_offsets\": [16, 16],\n"
                    "         \"dtype\": \"F32\"},\n"
                    "  \"b\": {\"data_offsets\": [0, 16], \"dtype\": \"F64\", \"shape\": [2]}\n}";
    unsigned char data[24];
    memcpy(data, (double[]){-0.5, 1e300}, 16);
    memcpy(data + 16, (float[]){3, -4}, 8);
    write_raw_header(h, strlen(h), data, sizeof data);
    tensor *a = tensor_zeros(DTYPE_F32, SHAPE(2)), *b = tensor_zeros(DTYPE_F64, SHAPE(2));
    tensor *e = tensor_zeros(DTYPE_F32, SHAPE(0, 3));
    const char *names[3] = {"e", "b", "a"};
    tensor *ts[3] = {e, b, a};
    ck_assert_int_eq(nn_safetensors_load(path, names, ts, 3), 0);
    ck_assert_ptr_null(tapegrad_error());
    ck_assert_tensor(a, ((double[]){3, -4}), 0);
    ck_assert_tensor(b, ((double[]){-0.5, 1e300}), 0);
    tensor_free(a);
    tensor_free(b);
    tensor_free(e);
    remove_dir();
}
END_TEST

/* Names are UTF-8 whether written raw or as \u escapes (a pair for a code
 * point past U+FFFF), so both spellings match the model's name. */
START_TEST(test_safetensors_unicode_names_match) {
    make_dir();
    const char *name = "caf\xc3\xa9.\xf0\x9f\x98\x80";
    const char *files[2] = {"{\"caf\\u00e9.\\ud83d\\ude00\":{\"dtype\":\"F32\",\"shape\":[2],"
                            "\"data_offsets\":[0,8]}}",
                            "{\"caf\xc3\xa9.\xf0\x9f\x98\x80\":{\"dtype\":\"F32\",\"shape\":[2],"
                            "\"data_offsets\":[0,8]}}"};
    for (int i = 0; i < 2; i++) {
        write_st(files[i], two, 8);
        tensor *t = tensor_zeros(DTYPE_F32, SHAPE(2));
        ck_assert_int_eq(nn_safetensors_load(path, &name, &t, 1), 0);
        ck_assert_tensor(t, ((double[]){1, 2}), 0);
        tensor_free(t);
    }
    remove_dir();
}
END_TEST

/* JSON the reference reader (serde_json) refuses is refused here too, at the
 * byte where it goes wrong. */
START_TEST(test_safetensors_strict_json) {
    make_dir();
    write_st("[]", two, 8);
    expect_malformed("the header is not a JSON object", 0);
    write_st("  \"w\"", two, 8);
    expect_malformed("the header is not a JSON object", 2);
    write_raw_header("", 0, two, 8);
    expect_malformed("the header is not a JSON object", 0);
    /* 0xff is never UTF-8; c0 af is an overlong '/'; ed a0 80 a surrogate */
    write_st("{\"w\xff\":{}}", two, 8);
    expect_malformed("bytes that are not UTF-8", 3);
    write_st("{\"\xc0\xaf\":{}}", two, 8);
    expect_malformed("bytes that are not UTF-8", 2);
    write_st("{\"\xed\xa0\x80\":{}}", two, 8);
    expect_malformed("bytes that are not UTF-8", 2);
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", two, 8);
    expect_malformed("trailing comma", 54);
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],}}", two, 8);
    expect_malformed("trailing comma", 53);
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"shape\":[2],\"data_offsets\":[0,8]}}",
             two, 8);
    expect_malformed("field \"shape\" given twice", 32);
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[00,8]}}", two, 8);
    expect_malformed("leading zero in a number", 48);
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", two, 8);
    expect_malformed("expected an integer, found a fraction or exponent", 30);
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":nul}}", two, 8);
    expect_malformed("unexpected character", 57);
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1.}}", two, 8);
    expect_malformed("bad number", 59);
    write_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":-1e}}", two, 8);
    expect_malformed("bad number", 60);
    write_st("{\"w\":5}", two, 8);
    expect_malformed("a tensor's entry is not an object", 5);
    remove_dir();
}
END_TEST

START_TEST(test_safetensors_strict_strings_and_metadata) {
    make_dir();
    write_st("{\"w\\ud800\":{}}", two, 8);
    expect_malformed("lone surrogate in a \\u escape", 9);
    write_st("{\"w\\udc00\":{}}", two, 8);
    expect_malformed("lone surrogate in a \\u escape", 9);
    write_st("{\"w\\u 12f\":{}}", two, 8);
    expect_malformed("bad \\u escape", 5);
    write_st("{\"w\\u0000x\":{}}", two, 8);
    expect_malformed("\\u0000 in a name or field", 9);
    write_st("{\"w\\q\":{}}", two, 8);
    expect_malformed("bad escape in a string", 5);
    write_st("{\"w\n\":{}}", two, 8);
    expect_malformed("control character in a string", 3);
    char h[300] = "{\"";
    memset(h + 2, 'n', 128);
    strcpy(h + 130, "\":{}}");
    write_st(h, two, 8);
    expect_malformed("tensor name over 127 bytes", 1);
    write_st("{\"__metadata__\":[],\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
             two, 8);
    expect_malformed("__metadata__ is not an object", 16);
    write_st("{\"__metadata__\":{\"n\":1},"
             "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
             two, 8);
    expect_malformed("a __metadata__ value is not a string", 21);
    write_st("{\"__metadata__\":{},\"__metadata__\":{}}", two, 8);
    expect_malformed("__metadata__ given twice", 19);
    remove_dir();
}
END_TEST

/* __metadata__ (as torch's save_file writes it) is skipped. */
START_TEST(test_safetensors_metadata_accepted) {
    make_dir();
    write_st("{\"__metadata__\":{\"format\":\"pt\"},"
             "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
             two, 8);
    tensor *t = tensor_zeros(DTYPE_F32, SHAPE(2));
    const char *name = "w";
    ck_assert_int_eq(nn_safetensors_load(path, &name, &t, 1), 0);
    ck_assert_tensor(t, ((double[]){1, 2}), 0);
    tensor_free(t);
    remove_dir();
}
END_TEST

START_TEST(test_model_rejects_duplicate_names) {
    nn_model *m = nn_model_new(DTYPE_F32, 0);
    ck_assert_ptr_nonnull(nn_model_add_param(m, "a", tensor_zeros(DTYPE_F32, SHAPE(1))));
    tapegrad_error_clear();
    ck_assert_ptr_null(nn_model_add_param(m, "a", tensor_zeros(DTYPE_F32, SHAPE(1))));
    ck_assert_str_eq(tapegrad_error(),
                     "nn_model_add_param: the model already has a tensor named \"a\"");
    tapegrad_error_clear();
    ck_assert_int_eq(m->n_params, 1);
    nn_model_free(m);
}
END_TEST

Suite *nn_checkpoint_suite(void) {
    Suite *s = suite_create("nn_checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_add_test(tc, test_checkpoint_round_trip_bit_exact);
    tcase_add_test(tc, test_checkpoint_layout_is_safetensors);
    tcase_add_test(tc, test_checkpoint_save_replaces_atomically);
    tcase_add_test(tc, test_checkpoint_f64_loads_into_f32);
    tcase_add_test(tc, test_safetensors_truncated_rejected);
    tcase_add_test(tc, test_safetensors_header_length_beyond_file_rejected);
    tcase_add_test(tc, test_safetensors_bad_json_rejected);
    tcase_add_test(tc, test_safetensors_dtype_and_shape_checked);
    tcase_add_test(tc, test_safetensors_names_and_overlap_checked);
    tcase_add_test(tc, test_safetensors_metadata_accepted);
    tcase_add_test(tc, test_safetensors_offsets_must_tile_the_data);
    tcase_add_test(tc, test_safetensors_any_order_and_layout_accepted);
    tcase_add_test(tc, test_safetensors_unicode_names_match);
    tcase_add_test(tc, test_safetensors_strict_json);
    tcase_add_test(tc, test_safetensors_strict_strings_and_metadata);
    tcase_add_test(tc, test_model_rejects_duplicate_names);
    tcase_add_test(tc, test_safetensors_bool_loads_into_int64_and_float);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(nn_checkpoint_suite)

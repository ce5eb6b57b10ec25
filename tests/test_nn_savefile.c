/* test_nn_savefile.c - a checkpoint file behaves like one a careful tool
 * writes: saving keeps the destination's permissions (a new file gets 0666
 * less the umask), writes through a symlink (the link stays a link), leaves
 * no temporary behind a crash that the next save does not remove, and the
 * old or the new checkpoint always loads whole; loading a FIFO fails at once
 * instead of waiting for a writer. */
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"

static char dir[64];

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/tapegrad_nn_savefile_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *in_dir(const char *name) {
    static char p[4][256];
    static int k;
    char *s = p[k++ % 4];
    snprintf(s, 256, "%s/%s", dir, name);
    return s;
}

static nn_model *model(int64_t n, double v) {
    nn_model *m = nn_model_new(DTYPE_F32, 0);
    tensor *w = nn_model_add_param(m, "w", tensor_zeros(DTYPE_F32, SHAPE(n)));
    ck_assert_ptr_nonnull(w);
    nn_init_constant(w, v);
    return m;
}

static mode_t mode_of(const char *p) {
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    return st.st_mode & 07777;
}

/* Before: every save left the file 0644 whatever it was. */
START_TEST(test_save_keeps_mode_and_new_file_follows_umask) {
    make_dir();
    nn_model *m = model(4, 1);
    const char *p = in_dir("ck.st");
    ck_assert_int_eq(nn_model_save(m, p), 0);
    ck_assert_int_eq(chmod(p, 0600), 0);
    ck_assert_int_eq(nn_model_save(m, p), 0);
    ck_assert_int_eq(mode_of(p), 0600);
    ck_assert_int_eq(chmod(p, 0640), 0);
    ck_assert_int_eq(nn_model_save(m, p), 0);
    ck_assert_int_eq(mode_of(p), 0640);

    mode_t old = umask(077);
    ck_assert_int_eq(nn_model_save(m, in_dir("new1.st")), 0);
    umask(027);
    ck_assert_int_eq(nn_model_save(m, in_dir("new2.st")), 0);
    umask(old);
    ck_assert_int_eq(mode_of(in_dir("new1.st")), 0600);
    ck_assert_int_eq(mode_of(in_dir("new2.st")), 0640);
    nn_model_free(m);
    remove_dir();
}
END_TEST

/* Before: the link was replaced by a regular file and the target kept the
 * old checkpoint. */
START_TEST(test_save_writes_through_symlinks) {
    make_dir();
    ck_assert_int_eq(mkdir(in_dir("real"), 0755), 0);
    nn_model *a = model(3, 1), *b = model(3, 2);
    ck_assert_int_eq(nn_model_save(a, in_dir("real/ck.st")), 0);
    ck_assert_int_eq(chmod(in_dir("real/ck.st"), 0600), 0);
    /* link -> link2 -> real/ck.st, both relative */
    ck_assert_int_eq(symlink("real/ck.st", in_dir("link2")), 0);
    ck_assert_int_eq(symlink("link2", in_dir("link")), 0);
    ck_assert_int_eq(nn_model_save(b, in_dir("link")), 0);
    struct stat st;
    ck_assert_int_eq(lstat(in_dir("link"), &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(lstat(in_dir("link2"), &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(mode_of(in_dir("real/ck.st")), 0600);
    ck_assert_int_eq(nn_model_load(a, in_dir("real/ck.st")), 0);
    ck_assert_double_eq(tensor_get(a->params[0], 2), 2);
    /* an absolute link to a file not there yet: the file is created */
    char target[256];
    snprintf(target, sizeof target, "%s", in_dir("real/later.st"));
    ck_assert_int_eq(symlink(target, in_dir("dangling")), 0);
    ck_assert_int_eq(nn_model_save(b, in_dir("dangling")), 0);
    ck_assert_int_eq(lstat(in_dir("dangling"), &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    ck_assert_int_eq(access(target, R_OK), 0);
    /* a loop is an error, not a hang */
    ck_assert_int_eq(symlink("loop2", in_dir("loop1")), 0);
    ck_assert_int_eq(symlink("loop1", in_dir("loop2")), 0);
    ck_assert_int_eq(nn_model_save(b, in_dir("loop1")), -1);
    char want[320];
    snprintf(want, sizeof want,
             "%s: cannot write the checkpoint (following its symlinks): Too many levels of "
             "symbolic links",
             in_dir("loop1"));
    ck_assert_error_is(want);
    nn_model_free(a);
    nn_model_free(b);
    remove_dir();
}
END_TEST

static int entries(void) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A temporary left by a killed save (simulated: a full-size file under the
 * temporary's name) is removed by the next save. */
START_TEST(test_save_removes_a_stale_temporary) {
    make_dir();
    nn_model *m = model(1000, 3);
    const char *p = in_dir("ck.st");
    FILE *f = fopen(in_dir("ck.st.tapegrad-tmp"), "wb");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < 4096; i++) fputc(i, f);
    fclose(f);
    ck_assert_int_eq(nn_model_save(m, p), 0);
    ck_assert_int_eq(access(in_dir("ck.st.tapegrad-tmp"), F_OK), -1);
    ck_assert_int_eq(entries(), 1);
    ck_assert_int_eq(nn_model_load(m, p), 0);
    nn_model_free(m);
    remove_dir();
}
END_TEST

/* Saves of an 8 MB checkpoint killed at random moments: after each kill the
 * checkpoint loads whole (every element the same value: one save's), at
 * most one temporary exists, and the next save leaves none. Before: one
 * NAME.tmp.XXXXXX per kill, never removed. */
START_TEST(test_killed_saves_leave_one_loadable_checkpoint) {
    make_dir();
    const int64_t n = 2 << 20;
    const char *p = in_dir("ck.st");
    nn_model *m = model(n, 0);
    ck_assert_int_eq(nn_model_save(m, p), 0);
    struct timespec seed;
    clock_gettime(CLOCK_MONOTONIC, &seed);
    srand((unsigned)seed.tv_nsec);
    int leftovers = 0;
    for (int round = 0; round < 12; round++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            float *w = m->params[0]->data;
            for (int k = 1;; k++) {
                for (int64_t i = 0; i < n; i++) w[i] = (float)(round * 1000 + k);
                nn_model_save(m, p);
            }
        }
        usleep((useconds_t)(50000 + rand() % 300000));
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        ck_assert_int_le(entries(), 2);
        leftovers += entries() - 1;
        ck_assert_int_eq(nn_model_load(m, p), 0);
        float *w = m->params[0]->data;
        for (int64_t i = 1; i < n; i++)
            if (w[i] != w[0]) ck_abort_msg("element %lld is %g, element 0 %g", (long long)i, w[i], w[0]);
    }
    fprintf(stderr, "killed saves: %d of 12 left a temporary, each removed by the next save\n",
            leftovers);
    ck_assert_int_eq(nn_model_save(m, p), 0);
    ck_assert_int_eq(entries(), 1);
    nn_model_free(m);
    remove_dir();
}
END_TEST

/* Before: open() of a FIFO waited for a writer forever (the Check timeout
 * fails this test then). */
START_TEST(test_load_of_fifo_or_directory_fails_at_once) {
    make_dir();
    nn_model *m = model(2, 0);
    const char *fifo = in_dir("fifo.st");
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(nn_model_load(m, fifo), -1);
    char want[320];
    snprintf(want, sizeof want, "%s: not a regular file (a directory, FIFO, socket or device)",
             fifo);
    ck_assert_error_is(want);
    ck_assert_int_eq(nn_model_load(m, dir), -1);
    snprintf(want, sizeof want, "%s: not a regular file (a directory, FIFO, socket or device)",
             dir);
    ck_assert_error_is(want);
    ck_assert_int_eq(nn_checkpoint_load(fifo, m, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "not a regular file"));
    tapegrad_error_clear();
    nn_model_free(m);
    remove_dir();
}
END_TEST

/* A path of 3,000 bytes: the message shows it cut in the middle and keeps
 * its reason (the error buffer holds 511 bytes). */
START_TEST(test_long_path_message_keeps_reason) {
    char p[3100];
    int k = snprintf(p, sizeof p, "/nonexistent/");
    while (k < 3000) k += snprintf(p + k, sizeof p - (size_t)k, "dir%04d/", k);
    snprintf(p + k, sizeof p - (size_t)k, "end.safetensors");
    nn_model *m = model(2, 0);
    ck_assert_int_eq(nn_model_load(m, p), -1);
    const char *e = tapegrad_error();
    ck_assert_ptr_nonnull(strstr(e, "/nonexistent/dir0013/"));
    ck_assert_ptr_nonnull(strstr(e, "...")); /* the middle left out */
    ck_assert_ptr_nonnull(strstr(e, "/end.safetensors: cannot open: No such file or directory"));
    tapegrad_error_clear();
    ck_assert_int_eq(nn_model_save(m, p), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "/end.safetensors: cannot write the checkpoint "
                                                   "(creating a temporary file beside it): No "
                                                   "such file or directory"));
    tapegrad_error_clear();
    nn_model_free(m);
}
END_TEST

Suite *nn_savefile_suite(void) {
    Suite *s = suite_create("nn_savefile");
    TCase *tc = tcase_create("savefile");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_save_keeps_mode_and_new_file_follows_umask);
    tcase_add_test(tc, test_save_writes_through_symlinks);
    tcase_add_test(tc, test_save_removes_a_stale_temporary);
    tcase_add_test(tc, test_killed_saves_leave_one_loadable_checkpoint);
    tcase_add_test(tc, test_long_path_message_keeps_reason);
    suite_add_tcase(s, tc);
    TCase *tf = tcase_create("fifo");
    tcase_set_timeout(tf, 5);
    tcase_add_test(tf, test_load_of_fifo_or_directory_fails_at_once);
    suite_add_tcase(s, tf);
    return s;
}

TEST_MAIN(nn_savefile_suite)

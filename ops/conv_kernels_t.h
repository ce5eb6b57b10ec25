/* conv_kernels_t.h - the convolution kernels for one element type T, in
 * plain C: conv_kernels.c includes this file once per type (T float, then
 * double), after the geometry, the register blocks of its ISA variant and
 * the vector types, and NAME(x) spells x_T (im2col_float, ...), so each
 * type's copy reads, debugs and profiles under names of its own. Not a
 * header for other files: no include guard, on purpose. */
#ifndef T
#error "conv_kernels_t.h is included by conv_kernels.c with T defined"
#endif

/* ----------------------------------------------------- columns, one image */

/* cols[(c, kh, kw)][(oh, ow)] = x[c, oh sh - ph + kh dh, ow sw - pw + kw dw], 0 in
 * the padding. Row (c KH + kh) KW + kw runs over all C channels, which lays the
 * groups' K x P blocks one after the other. */
static void NAME(im2col)(const conv_geom *q, const T *x, T *cols) {
    for (int64_t r = 0; r < q->C * q->KH * q->KW; r++) {
        int64_t c = r / (q->KH * q->KW), kh = r / q->KW % q->KH, kw = r % q->KW;
        int64_t off = kw * q->dw - q->pw, lo, hi;
        valid_range(off, q->sw, q->W, q->OW, &lo, &hi);
        const T *plane = x + c * q->H * q->W;
        T *dst = cols + r * q->P;
        for (int64_t oh = 0; oh < q->OH; oh++, dst += q->OW) {
            int64_t ih = oh * q->sh - q->ph + kh * q->dh;
            if (ih < 0 || ih >= q->H) {
                SIMD for (int64_t ow = 0; ow < q->OW; ow++) dst[ow] = 0;
                continue;
            }
            const T *src = plane + ih * q->W;
            SIMD for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0;
            SIMD for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow * q->sw + off];
            SIMD for (int64_t ow = hi; ow < q->OW; ow++) dst[ow] = 0;
        }
    }
}
/* dx[c] += the columns' entries that im2col read from it. */
static void NAME(col2im)(const conv_geom *q, const T *dcols, T *dx) {
    for (int64_t r = 0; r < q->C * q->KH * q->KW; r++) {
        int64_t c = r / (q->KH * q->KW), kh = r / q->KW % q->KH, kw = r % q->KW;
        int64_t off = kw * q->dw - q->pw, lo, hi;
        valid_range(off, q->sw, q->W, q->OW, &lo, &hi);
        T *plane = dx + c * q->H * q->W;
        const T *src = dcols + r * q->P;
        for (int64_t oh = 0; oh < q->OH; oh++, src += q->OW) {
            int64_t ih = oh * q->sh - q->ph + kh * q->dh;
            if (ih < 0 || ih >= q->H) continue;
            T *d = plane + ih * q->W;
            SIMD for (int64_t ow = lo; ow < hi; ow++) d[ow * q->sw + off] += src[ow];
        }
    }
}
/* Wide: row (c, kh, kw) = xp[c] from offset kh dh Wp + kw dw, L long. */
static void NAME(im2col_wide)(const conv_geom *q, const T *xp, T *cols) {
    for (int64_t r = 0; r < q->C * q->KH * q->KW; r++) {
        int64_t c = r / (q->KH * q->KW), kh = r / q->KW % q->KH, kw = r % q->KW;
        const T *src = xp + c * q->Hp * q->Wp + kh * q->dh * q->Wp + kw * q->dw;
        T *dst = cols + r * q->L;
        SIMD for (int64_t i = 0; i < q->L; i++) dst[i] = src[i];
    }
}
static void NAME(col2im_wide)(const conv_geom *q, const T *dcols, T *dxp) {
    for (int64_t r = 0; r < q->C * q->KH * q->KW; r++) {
        int64_t c = r / (q->KH * q->KW), kh = r / q->KW % q->KH, kw = r % q->KW;
        T *dst = dxp + c * q->Hp * q->Wp + kh * q->dh * q->Wp + kw * q->dw;
        const T *src = dcols + r * q->L;
        SIMD for (int64_t i = 0; i < q->L; i++) dst[i] += src[i];
    }
}
/* Tight (stride 1): plain columns, row (c, kh, kw) the OH runs of OW elements
 *   cols[(c, kh, kw)][oh OW + ow] = xp[c, (oh + kh dh) Wp + ow + kw dw]
 * copied a vector at a time. A run's last vector spills past its end into the next
 * run, which is written after it; the last spills into the slack, and reads run at
 * most a vector past xp, into its slack. */
static void NAME(im2col_tight)(const conv_geom *q, const T *xp, T *cols) {
    enum { V = CONV_TB / sizeof(T) };
    T *dst = cols;
    for (int64_t r = 0; r < q->C * q->KH * q->KW; r++) {
        int64_t c = r / (q->KH * q->KW), kh = r / q->KW % q->KH, kw = r % q->KW;
        const T *src = xp + c * q->Hp * q->Wp + kh * q->dh * q->Wp + kw * q->dw;
        for (int64_t oh = 0; oh < q->OH; oh++, src += q->Wp, dst += q->OW)
            for (int64_t ow = 0; ow < q->OW; ow += V) memcpy(dst + ow, src + ow, CONV_TB);
    }
}
/* Its transpose, as a gather: each input pixel (c, ih, iw), at (ih + ph, iw + pw) in
 * xp, sums the column entries that copied it,
 *   dx[c, ih, iw] += sum_{kw, kh} dcols[(c, kh, kw)][oh OW + ow],
 *   oh = ih + ph - kh dh in [0, OH), ow = iw + pw - kw dw in [0, OW),
 * V pixels of a row at a time, one load per tap with its lanes outside [0, OW) masked
 * to zero. The mask depends on kw and the vector's place in the row only; a kw with no lane
 * inside adds nothing and is not loaded (loads stay within a vector of the columns).
 * One store per pixel instead of one read-modify-write per column entry.
 *
 * gather_taps: one vector's sum over nkh kernel rows (base steps by tap_kh) and the
 * nk kw taps at base + col[k] under mask in[k], with nk a constant in each copy
 * (gather_sum's cases): the masks stay in registers and each kw has a sum of its
 * own, so a chain of adds is nkh long. Two sums alternating over kh (the form
 * before) made it a chain of about 13 dependent adds for LeNet's 5 x 5 taps,
 * which bounded the gather by FADD latency. The kw sums are added in kw order. */
static inline __attribute__((always_inline)) NAME(vec64)
    NAME(gather_taps)(const T *base, const int64_t *col, const NAME(vmask) *in, int nk,
                      int64_t nkh, int64_t tap_kh) {
    NAME(vec64) a[CONV_GATHER_KW], v;
    NAME(vmask) m[CONV_GATHER_KW];
    int64_t o[CONV_GATHER_KW];
    UNROLL for (int k = 0; k < nk; k++) a[k] = (NAME(vec64)){0}, m[k] = in[k], o[k] = col[k];
    for (int64_t h = 0; h < nkh; h++, base += tap_kh)
        UNROLL for (int k = 0; k < nk; k++) {
            memcpy(&v, base + o[k], sizeof v);
            a[k] += (NAME(vec64))((NAME(vmask))v & m[k]);
        }
    UNROLL for (int k = 1; k < nk; k++) a[0] += a[k];
    return a[0];
}
#define GATHER_CASE(k) case k: return NAME(gather_taps)(base, col, in, k, nkh, tap_kh);
static NAME(vec64) NAME(gather_sum)(const T *base, const int64_t *col, const NAME(vmask) *in,
                                    int nk, int64_t nkh, int64_t tap_kh) {
    switch (nk) {
        GATHER_CASE(1) GATHER_CASE(2) GATHER_CASE(3) GATHER_CASE(4)
        GATHER_CASE(5) GATHER_CASE(6) GATHER_CASE(7) GATHER_CASE(8)
    }
    return (NAME(vec64)){0}; /* nk is 1 .. CONV_GATHER_KW */
}
#undef GATHER_CASE
static void NAME(col2im_tight)(const conv_geom *q, const T *dcols, T *dx) {
    enum { V = CONV_TB / sizeof(T) };
    NAME(vmask) lane, in[CONV_GATHER_KW];
    int64_t col[CONV_GATHER_KW];
    for (int l = 0; l < V; l++) lane[l] = l;
    const int64_t plane = q->H * q->W, tap_kh = q->KW * q->P - q->dh * q->OW;
    /* kw in chunks of CONV_GATHER_KW (one chunk for LeNet's 5), and per vector
     * of a row, j0, the masks and column offsets of the chunk's kw with a lane
     * inside: they depend on neither the channel nor the row, so they are
     * worked out once for all C H vectors at j0 */
    for (int64_t kb = 0; kb < q->KW; kb += CONV_GATHER_KW)
        for (int64_t j0 = 0; j0 < q->W; j0 += V) {
            int nk = 0;
            for (int64_t kw = kb; kw < q->KW && kw < kb + CONV_GATHER_KW; kw++) {
                int64_t ow0 = j0 + q->pw - kw * q->dw; /* lane l is ow0 + l */
                if (ow0 >= q->OW || ow0 + V <= 0) continue;
                in[nk] = (lane >= (int)-ow0) & (lane < (int)(q->OW - ow0));
                col[nk++] = kw * q->P + ow0;
            }
            if (!nk) continue;
            for (int64_t c = 0; c < q->C; c++)
                for (int64_t ih = 0; ih < q->H; ih++) {
                    int64_t kh0 = 0, kh1 = q->KH; /* the kh with oh in [0, OH) */
                    while (kh0 < kh1 && ih + q->ph - kh0 * q->dh >= q->OH) kh0++;
                    while (kh1 > kh0 && ih + q->ph - (kh1 - 1) * q->dh < 0) kh1--;
                    const T *base = dcols + (c * q->KH + kh0) * q->KW * q->P +
                                    (ih + q->ph - kh0 * q->dh) * q->OW;
                    NAME(vec64) a0 = NAME(gather_sum)(base, col, in, nk, kh1 - kh0, tap_kh);
                    /* the pixels past the row's end belong to later rows of this
                     * image, written back unchanged; past the image, element by
                     * element */
                    int64_t at = (c * q->H + ih) * q->W + j0, n = q->W - j0 < V ? q->W - j0 : V;
                    T *d = dx + at;
                    if (at + V <= q->C * plane) {
                        NAME(vec64) dv;
                        memcpy(&dv, d, sizeof dv);
                        dv += (NAME(vec64))((NAME(vmask))a0 & (lane < (int)n));
                        memcpy(d, &dv, sizeof dv);
                    } else {
                        T a[V];
                        memcpy(a, &a0, sizeof a);
                        for (int64_t l = 0; l < n; l++) d[l] += a[l];
                    }
                }
        }
}
/* xp = x with ph zero rows and pw zero columns around each plane: each
 * element written once (zeroing the whole plane first wrote LeNet's conv1
 * planes, 784 of 1,024 elements inside, twice) */
static void NAME(pad)(const conv_geom *q, const T *x, T *xp) {
    for (int64_t c = 0; c < q->C; c++) {
        T *plane = xp + c * q->Hp * q->Wp;
        for (int64_t i = 0; i < q->ph * q->Wp; i++) plane[i] = 0;
        for (int64_t ih = 0; ih < q->H; ih++) {
            const T *s = x + (c * q->H + ih) * q->W;
            T *d = plane + (ih + q->ph) * q->Wp;
            for (int64_t iw = 0; iw < q->pw; iw++) d[iw] = 0;
            SIMD for (int64_t iw = 0; iw < q->W; iw++) d[q->pw + iw] = s[iw];
            for (int64_t iw = q->pw + q->W; iw < q->Wp; iw++) d[iw] = 0;
        }
        T *bottom = plane + (q->ph + q->H) * q->Wp;
        for (int64_t i = 0; i < (q->Hp - q->ph - q->H) * q->Wp; i++) bottom[i] = 0;
    }
}
/* dx += the interior of dxp */
static void NAME(unpad_acc)(const conv_geom *q, const T *dxp, T *dx) {
    for (int64_t c = 0; c < q->C; c++)
        for (int64_t ih = 0; ih < q->H; ih++) {
            const T *s = dxp + (c * q->Hp + ih + q->ph) * q->Wp + q->pw;
            T *d = dx + (c * q->H + ih) * q->W;
            SIMD for (int64_t iw = 0; iw < q->W; iw++) d[iw] += s[iw];
        }
}
/* y[oc, oh, ow] = yw[oc, oh Wp + ow] + bias[oc]  (bias may be NULL) */
static void NAME(unwiden)(const conv_geom *q, const T *yw, const T *bias, T *y) {
    for (int64_t oc = 0; oc < q->OC; oc++) {
        const T bv = bias ? bias[oc] : (T)0;
        for (int64_t oh = 0; oh < q->OH; oh++) {
            const T *s = yw + oc * q->L + oh * q->Wp;
            T *d = y + (oc * q->OH + oh) * q->OW;
            SIMD for (int64_t ow = 0; ow < q->OW; ow++) d[ow] = s[ow] + bv;
        }
    }
}
/* gw[oc, oh Wp + ow] = g[oc, oh, ow], 0 past each row's end (the last row
 * of a channel ends at OW). A row of at least V pixels (LeNet's conv1: 28 of
 * Wp 32) goes in whole vectors: the zeros first (the last vector shifted
 * back to end at the row's end), then the pixels front to back, the last
 * vector shifted back to end at OW (it rewrites pixels the zeros or the
 * vector before it wrote); a scalar loop ran a
 * quarter of each 28-pixel row and took about 1 % of a LeNet-5 step. */
static void NAME(widen)(const conv_geom *q, const T *g, T *gw) {
    enum { V = CONV_TB / sizeof(T) };
    for (int64_t oc = 0; oc < q->OC; oc++)
        for (int64_t oh = 0; oh < q->OH; oh++) {
            const T *s = g + (oc * q->OH + oh) * q->OW;
            T *d = gw + oc * q->L + oh * q->Wp;
            const int64_t end = oh + 1 < q->OH ? q->Wp : q->OW;
            if (q->OW < V) {
                SIMD for (int64_t ow = 0; ow < q->OW; ow++) d[ow] = s[ow];
                for (int64_t ow = q->OW; ow < end; ow++) d[ow] = 0;
                continue;
            }
            const NAME(vec64) zero = {0};
            NAME(vec64) v;
            for (int64_t ow = q->OW; ow < end; ow += V)
                memcpy(d + (ow + V <= end ? ow : end - V), &zero, sizeof zero);
            for (int64_t ow = 0;; ow += V) {
                const int64_t at = ow + V <= q->OW ? ow : q->OW - V;
                memcpy(&v, s + at, sizeof v);
                memcpy(d + at, &v, sizeof v);
                if (at + V == q->OW) break;
            }
        }
}


/* Direct forward (stride 1, small K), one group of one image, on the wide
 * layout: with xp the group's padded channels (C/G, Hp, Wp), yw (OC/G, L) and
 * tap t = (c, kh, kw) at offset off_t = c Hp Wp + kh dh Wp + kw dw,
 *
 *   yw[o, i] = sum_t w[o, t] xp[i + off_t]
 *
 * a sum of shifted contiguous runs of xp. The accumulators, a block of
 * CONV_OB output channels x CONV_NV vectors of pixels (GCC/Clang vectors of
 * CONV_VB bytes), stay in registers over all K taps: per tap CONV_OB CONV_NV
 * FMAs for CONV_NV loads and CONV_OB broadcasts (v4: 12 for 2 and 6). The small loops over a block are unrolled by pragma: at -O2
 * they would stay loops and the accumulators would live in memory. */
enum { NAME(LANES) = CONV_VB / sizeof(T) };
static inline NAME(vec) NAME(vload)(const T *p) {
    NAME(vec) v;
    memcpy(&v, p, sizeof v);
    return v;
}
static int64_t NAME(direct_offsets)(const conv_geom *q, int64_t *off) {
    int64_t k = 0;
    for (int64_t c = 0; c < q->C / q->G; c++)
        for (int64_t kh = 0; kh < q->KH; kh++)
            for (int64_t kw = 0; kw < q->KW; kw++)
                off[k++] = c * q->Hp * q->Wp + kh * q->dh * q->Wp + kw * q->dw;
    return k;
}
/* The block of wide pixels [i, i + NV LANES) for the no <= OB channels of wo
 * (no, K), stored as y[o, oh, ow0 ..] + bias[o] from lane s on, n pixels. With
 * `spill` the whole block is stored from dst: its lanes past n land in the next
 * output row, which is written after this one. Otherwise through a buffer. */
static inline __attribute__((always_inline)) void NAME(direct_fwd_block)(
    const T *xp, const int64_t *off, int64_t K, const T *wo, int no, const T *bias,
    T *dst, int64_t P, int64_t s, int64_t n, bool spill) {
    NAME(vec) acc[CONV_OB][CONV_NV];
    UNROLL for (int u = 0; u < no; u++)
        UNROLL for (int v = 0; v < CONV_NV; v++) acc[u][v] = (NAME(vec)){0};
    for (int64_t t = 0; t < K; t++) {
        NAME(vec) xs[CONV_NV];
        UNROLL for (int v = 0; v < CONV_NV; v++) xs[v] = NAME(vload)(xp + off[t] + v * NAME(LANES));
        UNROLL for (int u = 0; u < no; u++) {
            const T wv = wo[u * K + t];
            UNROLL for (int v = 0; v < CONV_NV; v++) acc[u][v] += wv * xs[v];
        }
    }
    UNROLL for (int u = 0; u < no; u++) {
        const T bv = bias ? bias[u] : (T)0;
        if (spill) {
            UNROLL for (int v = 0; v < CONV_NV; v++) {
                NAME(vec) r = acc[u][v] + bv;
                memcpy(dst + u * P + v * NAME(LANES), &r, sizeof r);
            }
        } else {
            T buf[CONV_NV * NAME(LANES)];
            memcpy(buf, acc[u], sizeof buf);
            for (int64_t l = 0; l < n; l++) dst[u * P + l] = buf[s + l] + bv;
        }
    }
}
/* y (OC/G, OH, OW) of the group, with bias (or NULL), straight from the wide
 * sums, row by row: output row oh is wide pixels [oh Wp, oh Wp + OW). A row of
 * at least a block is covered by blocks, the last shifted back to end at OW
 * (recomputing a few pixels to the same values). A shorter row (LeNet's conv1:
 * 28 of a 32-pixel block) is one block from its start, storing all 32 into the
 * next row's start (overwritten next) when the row is not the last and is at
 * least half a block; the last row's block is shifted back to end at L (needs
 * L >= NV LANES), so no read passes the image, and goes through a buffer. */
static void NAME(direct_fwd)(const conv_geom *q, const T *xp, const T *w, const T *bias,
                             T *y) {
    int64_t off[CONV_DIRECT_K], K = NAME(direct_offsets)(q, off), L = q->L;
    const int64_t blk = CONV_NV * NAME(LANES), OW = q->OW, P = q->P;
    for (int64_t oh = 0; oh < q->OH; oh++)
        for (int64_t ow0 = 0; ow0 < OW; ow0 += blk) {
            if (ow0 + blk > OW && OW >= blk) ow0 = OW - blk;
            int64_t n = OW - ow0 < blk ? OW - ow0 : blk, i = oh * q->Wp + ow0, s = 0;
            if (i + blk > L) s = i + blk - L, i = L - blk;
            bool spill = n == blk || (s == 0 && oh + 1 < q->OH && blk <= 2 * OW);
            T *dst = y + oh * OW + ow0;
            int64_t o = 0;
            for (; o + CONV_OB <= q->OCg; o += CONV_OB)
                NAME(direct_fwd_block)(xp + i, off, K, w + o * K, CONV_OB,
                                       bias ? bias + o : NULL, dst + o * P, P, s, n, spill);
            for (; o < q->OCg; o++)
                NAME(direct_fwd_block)(xp + i, off, K, w + o * K, 1, bias ? bias + o : NULL,
                                       dst + o * P, P, s, n, spill);
        }
}


/* Direct weight gradient (stride 1), one group of one image, as dW^T
 * (K, OC/G) like the transposed GEMM: with xp the group's padded channels
 * (C/G, Hp, Wp), G (OC/G, P) the upstream gradient, gt = G^T (P, OC/G) and
 * tap k = (c, kh, kw) at offset off_k = c Hp Wp + kh dh Wp + kw dw,
 *
 *   dW^T[k, o] += sum_{oh, ow} xp[off_k + oh Wp + ow] gt[oh OW + ow, o]
 *
 * A vector of output channels per tap: each pixel is one load of gt's row
 * and, per tap, a broadcast of the input under it and an FMA, for a block
 * of CONV_DWK taps whose sums stay in registers over all P pixels. No
 * columns are built, and the sum runs over the P output pixels only (wide
 * columns would run over L). For LeNet's conv2 it replaces im2col and an
 * SGEMM whose small M x N (150 x 16) kept it at about 80 GFLOP/s. */
/* A block is up to CONV_DWK taps of one kernel row, kw0 .. kw0 + nt - 1, by
 * up to CONV_DWNV vectors of output channels: per pixel nv loads of gt's
 * row and, per tap, one broadcast feeding nv FMAs. The taps of a row sit at
 * xr + u dw, so one pointer walks the image (a pointer per tap spilled on
 * AVX2's 16 registers). On v4, 5 taps x 1 vector (LeNet's 16 channels fill
 * one register) measured for conv2 (ms per batch-64 fwd+bwd) 1.41 against
 * 1.43 for 6, 1.46 for 10, 1.47 for 8 or 15 taps; on v3 see conv_kernels.c.
 * CONV_DWPH sets of sums take the pixels in turn (ow % CONV_DWPH), so a block
 * has CONV_DWPH nt nv independent chains of FMAs: v4's 5 sums were one chain
 * each, 5 FMAs per FMA latency where a core with two full-width 512-bit FMA
 * pipes (Zen 5) needs 8 in flight; 2 sets (10 chains) took conv2 fwd+bwd
 * from 0.791 to 0.740 ms there (paired medians of 15, AMD EPYC Zen 5). */
enum { NAME(DWV) = CONV_TB / sizeof(T) };
/* part rows (nt, OCg) += the block's sums; xr: the image at the row's first
 * tap; dil: the taps' distance (a literal 1 where it can be, so the taps'
 * addresses are constant offsets) */
static inline __attribute__((always_inline)) void NAME(dw_direct_block)(
    const conv_geom *q, const T *xr, int64_t dil, const T *gt, int nt, int nv, T *part) {
    enum { V = NAME(DWV), PH = CONV_DWPH };
    /* PH sets of sums, pixel ow feeding set ow % PH (summed at the end) */
    NAME(vec64) acc[PH][CONV_DWK][CONV_DWNV];
    UNROLL for (int u = 0; u < nt; u++)
        UNROLL for (int v = 0; v < nv; v++) {
            memcpy(&acc[0][u][v], part + u * q->OCg + v * V, sizeof acc[0][u][v]);
            UNROLL for (int h = 1; h < PH; h++) acc[h][u][v] = (NAME(vec64)){0};
        }
#define DW_PIXEL(h, ow)                                                                 \
    do {                                                                                \
        NAME(vec64) gv[CONV_DWNV];                                                      \
        UNROLL for (int v = 0; v < nv; v++)                                             \
            memcpy(&gv[v], gr + (ow) * q->OCg + v * V, sizeof gv[v]);                   \
        const T *xw = xo + (ow);                                                        \
        OPAQUE(xw);                                                                     \
        UNROLL for (int u = 0; u < nt; u++) {                                           \
            const T xv = xw[u * dil];                                                   \
            UNROLL for (int v = 0; v < nv; v++) acc[h][u][v] += xv * gv[v];             \
        }                                                                               \
    } while (0)
    for (int64_t oh = 0; oh < q->OH; oh++) {
        const T *gr = gt + oh * q->OW * q->OCg, *xo = xr + oh * q->Wp;
        int64_t ow = 0;
        for (; ow + PH <= q->OW; ow += PH)
            UNROLL for (int h = 0; h < PH; h++) DW_PIXEL(h, ow + h);
        for (; ow < q->OW; ow++) DW_PIXEL(0, ow);
    }
#undef DW_PIXEL
    UNROLL for (int h = 1; h < PH; h++)
        UNROLL for (int u = 0; u < nt; u++)
            UNROLL for (int v = 0; v < nv; v++) acc[0][u][v] += acc[h][u][v];
    UNROLL for (int u = 0; u < nt; u++)
        UNROLL for (int v = 0; v < nv; v++)
            memcpy(part + u * q->OCg + v * V, &acc[0][u][v], sizeof acc[0][u][v]);
}
/* nt taps from xr by nv vectors, with nt and nv made constants for the block.
 * Without tree-pre: GCC 12's partial redundancy elimination left 4 of the 10
 * sums of v3's block on the stack (13 of 16 registers in use), at -O2 and -O3. */
static void __attribute__((optimize("no-tree-pre")))
NAME(dw_direct_run)(const conv_geom *q, const T *xr, const T *gt, int nt, int nv, T *part) {
    /* a case per block width: nt and nv constants, so the sums stay in registers */
#define DW_CASE(k) case k: if (k <= CONV_DWK) { NAME(dw_direct_block)(q, xr, 1, gt, k, CONV_DWNV, part); return; } break;
    if (nv == CONV_DWNV && q->dw == 1)
        switch (nt) { DW_CASE(1) DW_CASE(2) DW_CASE(3) DW_CASE(4) DW_CASE(5) DW_CASE(6) DW_CASE(7) DW_CASE(8) }
#undef DW_CASE
    /* dilated taps or a last odd vector (or a block wider than CONV_DWK, which
     * dw_direct does not ask for): a tap and a vector at a time */
    for (int u = 0; u < nt; u++)
        for (int v = 0; v < nv; v++)
            NAME(dw_direct_block)(q, xr + u * q->dw, 0, gt + v * NAME(DWV), 1, 1,
                                  part + u * q->OCg + v * NAME(DWV));
}
static void NAME(dw_direct)(const conv_geom *q, const T *xp, const T *g, T *gt, T *part) {
    NAME(transpose)(g, q->P, q->OCg, q->P, gt, q->OCg); /* gt (P, OC/G) = G^T */
    /* each kernel row's KW taps in the fewest blocks of at most CONV_DWK, of equal size */
    const int64_t nb = (q->KW + CONV_DWK - 1) / CONV_DWK, nt = (q->KW + nb - 1) / nb;
    const int64_t nvec = q->OCg / NAME(DWV);
    for (int64_t v0 = 0; v0 < nvec; v0 += CONV_DWNV) {
        int nv = nvec - v0 < CONV_DWNV ? (int)(nvec - v0) : CONV_DWNV;
        for (int64_t c = 0; c < q->C / q->G; c++)
            for (int64_t kh = 0; kh < q->KH; kh++)
                for (int64_t kw0 = 0; kw0 < q->KW; kw0 += nt) {
                    int n = q->KW - kw0 < nt ? (int)(q->KW - kw0) : (int)nt;
                    const T *xr = xp + c * q->Hp * q->Wp + kh * q->dh * q->Wp + kw0 * q->dw;
                    int64_t k0 = (c * q->KH + kh) * q->KW + kw0;
                    NAME(dw_direct_run)(q, xr, gt + v0 * NAME(DWV), n, nv,
                                        part + k0 * q->OCg + v0 * NAME(DWV));
                }
    }
}

/* Direct weight gradient on the wide layout (the short contractions of the
 * direct forward: LeNet's conv1, K 25, OC 6), one group of one image. With
 * xp the group's padded channels (C/G, Hp, Wp), gw (OC/G, L) the upstream
 * gradient widened (0 past each row's end) and off_t as in direct_fwd,
 *
 *   dW[o, t] += sum_{i < L} gw[o, i] xp[off_t + i]
 *
 * Pixels in the lanes, with a block of CONV_DWO output channels x CONV_DWT
 * taps of vector sums in registers over the whole image: per vector of
 * pixels CONV_DWO + CONV_DWT loads feed CONV_DWO CONV_DWT FMAs, and each sum
 * is reduced across its lanes once per image. (One load per FMA and a lane
 * sum per weight ran at half SGEMM's rate.) The last part vector of L is
 * copied into zeroed vectors: past L, xp may be the end of the input. */
static inline __attribute__((always_inline)) void NAME(dw_wide_block)(
    const conv_geom *q, const T *xp, const int64_t *off, int nt, const T *gw, int no,
    T *part) {
    enum { V = CONV_TB / sizeof(T) };
    NAME(vec64) acc[CONV_DWO][CONV_DWT], gv[CONV_DWO], xv[CONV_DWT];
    UNROLL for (int u = 0; u < no; u++)
        UNROLL for (int t = 0; t < nt; t++) acc[u][t] = (NAME(vec64)){0};
    const int64_t L = q->L;
    int64_t i = 0;
    for (; i + V <= L; i += V) {
        UNROLL for (int u = 0; u < no; u++) memcpy(&gv[u], gw + u * L + i, sizeof gv[u]);
        UNROLL for (int t = 0; t < nt; t++) memcpy(&xv[t], xp + off[t] + i, sizeof xv[t]);
        UNROLL for (int u = 0; u < no; u++)
            UNROLL for (int t = 0; t < nt; t++) acc[u][t] += gv[u] * xv[t];
    }
    if (i < L) {
        size_t tail = (size_t)(L - i) * sizeof(T);
        UNROLL for (int u = 0; u < no; u++) {
            gv[u] = (NAME(vec64)){0};
            memcpy(&gv[u], gw + u * L + i, tail);
        }
        UNROLL for (int t = 0; t < nt; t++) {
            xv[t] = (NAME(vec64)){0};
            memcpy(&xv[t], xp + off[t] + i, tail);
        }
        UNROLL for (int u = 0; u < no; u++)
            UNROLL for (int t = 0; t < nt; t++) acc[u][t] += gv[u] * xv[t];
    }
    UNROLL for (int u = 0; u < no; u++)
        UNROLL for (int t = 0; t < nt; t++) {
            T a[V], sum = 0;
            memcpy(a, &acc[u][t], sizeof a);
            for (int l = 0; l < V; l++) sum += a[l];
            part[u * q->K + t] += sum;
        }
}
/* part (OC/G, K) += this image's dW */
static void NAME(dw_wide)(const conv_geom *q, const T *xp, const T *gw, T *part) {
    int64_t off[CONV_DIRECT_K], K = NAME(direct_offsets)(q, off);
    int64_t o = 0;
    for (; o + CONV_DWO <= q->OCg; o += CONV_DWO) {
        int64_t t = 0;
        for (; t + CONV_DWT <= K; t += CONV_DWT)
            NAME(dw_wide_block)(q, xp, off + t, CONV_DWT, gw + o * q->L, CONV_DWO,
                                part + o * K + t);
        for (; t < K; t++)
            NAME(dw_wide_block)(q, xp, off + t, 1, gw + o * q->L, CONV_DWO, part + o * K + t);
    }
    for (; o < q->OCg; o++)
        for (int64_t t = 0; t < K; t++)
            NAME(dw_wide_block)(q, xp, off + t, 1, gw + o * q->L, 1, part + o * K + t);
}

/* Direct forward with the output channels in the lanes (stride 1, OC/G a
 * whole number of vectors: LeNet's conv2, 16 in float32), one group of one
 * image. With xp the group's padded channels (C/G, Hp, Wp), wt = W^T
 * (K, OC/G) and tap t = (c, kh, kw) at off_t = c Hp Wp + kh dh Wp + kw dw,
 *
 *   yt[oh OW + ow, o] = bias[o] + sum_t xp[off_t + oh Wp + ow] wt[t, o]
 *   y[o, p] = yt[p, o]                                 y (OC/G, P), yt (P, OC/G)
 *
 * A block of n <= CONV_FB pixels of one output row by nv <= CONV_FNV
 * vectors of output channels keeps its n nv sums in registers over all K
 * taps: per tap nv loads of wt's row, and per pixel a broadcast of the
 * input feeding nv FMAs. No columns are built; for conv2 im2col cost half as
 * much as the SGEMM after it. A row of OW pixels is cut into the fewest
 * blocks of at most CONV_FB, of equal size n (the last shifted back to end
 * at OW when they do not divide it, recomputing a few pixels to the same
 * values), so one of the unrolled copies runs for the whole call. */
static inline __attribute__((always_inline)) void NAME(fwd_cl_block)(
    const conv_geom *q, const T *xp, const T *wt, const NAME(vec64) *b0, int n, int nv, T *yt) {
    enum { V = CONV_TB / sizeof(T) };
    NAME(vec64) acc[CONV_FB][CONV_FNV];
    UNROLL for (int j = 0; j < n; j++)
        UNROLL for (int v = 0; v < nv; v++) acc[j][v] = b0[v];
    const T *wk = wt;
    for (int64_t c = 0; c < q->C / q->G; c++)
        for (int64_t kh = 0; kh < q->KH; kh++) {
            const T *xr = xp + c * q->Hp * q->Wp + kh * q->dh * q->Wp;
            for (int64_t kw = 0; kw < q->KW; kw++, xr += q->dw, wk += q->OCg) {
                NAME(vec64) wv[CONV_FNV];
                UNROLL for (int v = 0; v < nv; v++) memcpy(&wv[v], wk + v * V, sizeof wv[v]);
                const T *xj = xr;
                OPAQUE(xj);
                UNROLL for (int j = 0; j < n; j++) {
                    const T xv = xj[j];
                    UNROLL for (int v = 0; v < nv; v++) acc[j][v] += xv * wv[v];
                }
            }
        }
    UNROLL for (int j = 0; j < n; j++)
        UNROLL for (int v = 0; v < nv; v++) memcpy(yt + j * q->OCg + v * V, &acc[j][v], sizeof acc[j][v]);
}
static inline __attribute__((always_inline)) void NAME(fwd_cl_blocks)(
    const conv_geom *q, const T *xp, const T *wt, const T *bias, int n, int nv, int64_t ob,
    T *yt) {
    enum { V = CONV_TB / sizeof(T) };
    NAME(vec64) b0[CONV_FNV];
    UNROLL for (int v = 0; v < nv; v++) {
        b0[v] = (NAME(vec64)){0};
        if (bias) memcpy(&b0[v], bias + ob + v * V, sizeof b0[v]);
    }
    for (int64_t oh = 0; oh < q->OH; oh++)
        for (int64_t ow = 0; ow < q->OW; ow += n) {
            if (ow + n > q->OW) ow = q->OW - n;
            NAME(fwd_cl_block)(q, xp + oh * q->Wp + ow, wt + ob, b0, n, nv,
                               yt + (oh * q->OW + ow) * q->OCg + ob);
        }
}
/* the blocks of n pixels by nv vectors from channel ob, n and nv made constants */
static void NAME(fwd_cl_run)(const conv_geom *q, const T *xp, const T *wt, const T *bias, int n,
                             int nv, int64_t ob, T *yt) {
#define FWD_CASE(k) case k: if (k <= CONV_FB) { NAME(fwd_cl_blocks)(q, xp, wt, bias, k, CONV_FNV, ob, yt); return; } break;
    if (nv == CONV_FNV)
        switch (n) {
            FWD_CASE(1) FWD_CASE(2) FWD_CASE(3) FWD_CASE(4) FWD_CASE(5) FWD_CASE(6)
            FWD_CASE(7) FWD_CASE(8) FWD_CASE(9) FWD_CASE(10) FWD_CASE(11) FWD_CASE(12)
        }
#undef FWD_CASE
    /* a last odd vector of channels (or more than CONV_FB pixels, which fwd_cl
     * does not ask for): a vector and a pixel at a time */
    for (int v = 0; v < nv; v++)
        NAME(fwd_cl_blocks)(q, xp, wt, bias, 1, 1, ob + v * (int64_t)(CONV_TB / sizeof(T)), yt);
}
/* yt (P, OC/G), and y (OC/G, P) = yt^T unless y is NULL (the fused pool reads yt) */
static void NAME(fwd_cl)(const conv_geom *q, const T *xp, const T *wt, const T *bias,
                         T *yt, T *y) {
    const int64_t nb = (q->OW + CONV_FB - 1) / CONV_FB, n = (q->OW + nb - 1) / nb;
    const int64_t V = CONV_TB / sizeof(T), nvec = q->OCg / V;
    for (int64_t v0 = 0; v0 < nvec; v0 += CONV_FNV)
        NAME(fwd_cl_run)(q, xp, wt, bias, (int)n, nvec - v0 < CONV_FNV ? (int)(nvec - v0) : CONV_FNV,
                         v0 * V, yt);
    if (y) NAME(transpose)(yt, q->OCg, q->P, q->OCg, y, q->P);
}

/* ----------------------------------------- per-image forward and backward */

/* y_b = W @ cols_b + bias, group by group, by q->fwd */
static void NAME(conv_fwd_image)(const conv_geom *q, const T *xb, const T *w,
                                 const T *wt, const T *bias, T *yb, T *slot) {
    conv_slot s = conv_slot_of(q);
    T *cols = slot + s.cols, *out = q->wide ? slot + s.yw : yb, *xs = slot + s.xp;
    const int64_t gx = (q->C / q->G) * q->Hp * q->Wp; /* a group's padded channels */
    const T *xp = xb;
    switch (q->fwd) {
    case CONV_FWD_LANES: /* wt: W^T per group, written by conv_fwd */
        if (q->ph || q->pw) NAME(pad)(q, xb, xs), xp = xs;
        for (int64_t g = 0; g < q->G; g++)
            NAME(fwd_cl)(q, xp + g * gx, wt + g * q->K * q->OCg, bias ? bias + g * q->OCg : NULL,
                         slot + s.gt, yb + g * q->OCg * q->P);
        return;
    case CONV_FWD_DIRECT:
        if (q->padded) NAME(pad)(q, xb, xs), xp = xs;
        for (int64_t g = 0; g < q->G; g++)
            NAME(direct_fwd)(q, xp + g * gx, w + g * q->OCg * q->K, bias ? bias + g * q->OCg : NULL,
                             yb + g * q->OCg * q->P);
        return;
    case CONV_FWD_TIGHT:
        NAME(pad)(q, xb, xs);
        NAME(im2col_tight)(q, xs, cols);
        break;
    case CONV_FWD_WIDE:
        if (q->padded) NAME(pad)(q, xb, xs), xp = xs;
        NAME(im2col_wide)(q, xp, cols);
        break;
    case CONV_FWD_PLAIN:
        NAME(im2col)(q, xb, cols);
        break;
    }
    for (int64_t g = 0; g < q->G; g++)
        NAME(blas_gemm)(false, false, q->OCg, q->L, q->K, w + g * q->OCg * q->K, q->K,
                        cols + g * q->K * q->L, q->L, 0, out + g * q->OCg * q->L, q->L);
    if (q->wide) {
        NAME(unwiden)(q, out, bias, yb);
    } else if (bias) {
        for (int64_t oc = 0; oc < q->OC; oc++) {
            T *d = yb + oc * q->P;
            SIMD for (int64_t p = 0; p < q->P; p++) d[p] += bias[oc];
        }
    }
}
/* db_part[oc] += sum_p gb[oc, p] for one image's G (OC, n) with rows of n
 * pixels (P, or the wide layout's L, whose gaps hold zeros), read here while
 * the image's backward has it in cache (a pass over the whole batch's G of its
 * own read 1.6 MB for LeNet, 2% of the step). Four vector sums: one would be a
 * chain of dependent adds. */
static void NAME(bias_part)(const conv_geom *q, const T *gb, int64_t n, T *db_part) {
    enum { V = CONV_TB / sizeof(T) };
    for (int64_t oc = 0; oc < q->OC; oc++) {
        const T *s = gb + oc * n;
        NAME(vec64) a[4] = {{0}, {0}, {0}, {0}}, v;
        int64_t p = 0;
        for (; p + 4 * V <= n; p += 4 * V)
            UNROLL for (int u = 0; u < 4; u++) {
                memcpy(&v, s + p + u * V, sizeof v);
                a[u] += v;
            }
        for (; p + V <= n; p += V) {
            memcpy(&v, s + p, sizeof v);
            a[0] += v;
        }
        T r = 0, lane[V];
        for (; p < n; p++) r += s[p];
        a[0] += a[1], a[2] += a[3], a[0] += a[2];
        memcpy(lane, &a[0], sizeof lane);
        for (int l = 0; l < V; l++) r += lane[l];
        db_part[oc] += r;
    }
}
/* dw_part += G_b @ cols_b^T by q->dwp (when dw_part); db_part += G_b's row sums
 * (when db_part); dx_b += col2im(W^T @ G_b) by q->dx (when dxb). gb NULL: G_b
 * is already in the slot's wide copy (q->wide, and q->dwp not the lanes
 * kernel, which reads G_b itself). */
static void NAME(conv_bwd_image)(const conv_geom *q, const T *xb, const T *w,
                                 const T *gb, T *dw_part, T *db_part, T *dxb, T *slot) {
    conv_slot s = conv_slot_of(q);
    T *cols = slot + s.cols, *dcols = slot + s.dcols, *xs = slot + s.xp;
    const int64_t gx = (q->C / q->G) * q->Hp * q->Wp; /* a group's padded channels */
    const T *g = gb, *xp = xb;
    /* The bias sums read the wide copy, just written and in L1, rather than G
     * itself, a second read of G from L2 or memory (LeNet's conv1: 1.2 MB a
     * batch); the copy's gaps hold zeros. */
    if (q->wide) {
        if (gb) NAME(widen)(q, gb, slot + s.yw);
        g = slot + s.yw;
    }
    if (db_part) NAME(bias_part)(q, g, q->wide ? q->L : q->P, db_part);
    if (dw_part) switch (q->dwp) {
    case CONV_DW_LANES: /* reads the image in place when unpadded */
        if (q->ph || q->pw) NAME(pad)(q, xb, xs), xp = xs;
        for (int64_t k = 0; k < q->G; k++)
            NAME(dw_direct)(q, xp + k * gx, gb + k * q->OCg * q->P, slot + s.gt,
                            dw_part + k * q->OCg * q->K);
        break;
    case CONV_DW_DIRECT:
        if (q->padded) NAME(pad)(q, xb, xs), xp = xs;
        for (int64_t k = 0; k < q->G; k++)
            NAME(dw_wide)(q, xp + k * gx, g + k * q->OCg * q->L, dw_part + k * q->OCg * q->K);
        break;
    case CONV_DW_TIGHT:
    case CONV_DW_WIDE:
    case CONV_DW_PLAIN:
        if (q->dwp == CONV_DW_PLAIN) {
            NAME(im2col)(q, xb, cols);
        } else {
            if (q->padded) NAME(pad)(q, xb, xs), xp = xs;
            if (q->dwp == CONV_DW_TIGHT)
                NAME(im2col_tight)(q, xp, cols);
            else
                NAME(im2col_wide)(q, xp, cols);
        }
        for (int64_t k = 0; k < q->G; k++) {
            const T *gk = g + k * q->OCg * q->L, *ck = cols + k * q->K * q->L;
            T *pk = dw_part + k * q->OCg * q->K;
            if (q->dw_t)
                NAME(blas_gemm)(false, true, q->K, q->OCg, q->L, ck, q->L, gk, q->L, 1, pk, q->OCg);
            else
                NAME(blas_gemm)(false, true, q->OCg, q->K, q->L, gk, q->L, ck, q->L, 1, pk, q->K);
        }
        break;
    }
    if (!dxb) return;
    for (int64_t k = 0; k < q->G; k++)
        NAME(blas_gemm)(true, false, q->K, q->L, q->OCg, w + k * q->OCg * q->K, q->K,
                        g + k * q->OCg * q->L, q->L, 0, dcols + k * q->K * q->L, q->L);
    switch (q->dx) {
    case CONV_DX_TIGHT:
        NAME(col2im_tight)(q, dcols, dxb);
        break;
    case CONV_DX_PLAIN:
        NAME(col2im)(q, dcols, dxb);
        break;
    case CONV_DX_WIDE:
        if (!q->padded) {
            NAME(col2im_wide)(q, dcols, dxb);
        } else {
            T *dxp = slot + s.dxp;
            for (int64_t i = 0; i < q->C * q->Hp * q->Wp; i++) dxp[i] = 0;
            NAME(col2im_wide)(q, dcols, dxp);
            NAME(unpad_acc)(q, dxp, dxb);
        }
        break;
    }
}

/* ----------------------------------------- the batch: images over threads */

/* Images are split over threads, dW summed by fixed chunks of images (see
 * conv_kernels.c: the same bits for any thread count), by conv_par. */
typedef struct {
    const conv_geom *q;
    const T *x, *w, *wt, *bias, *g;
    T *y, *scratch, *parts, *dx;
    int32_t *code; /* with q->pool: the argmax taps, one per element of y */
    int64_t slot, wsize;
    bool dw, db;
} NAME(conv_run);

/* conv2d_max_pool2d, one image: its output yb (OC, OH, OW), still in the
 * thread's scratch, max-pooled plane by plane by this variant's 2x2 kernel
 * (pool_kernels.c: max_pool2d's, so the same values and argmaxes) into
 * y (OC, POH, POW), each window's argmax kept as its tap (0-3, int32);
 * and the adjoint, dy (OC, OH, OW) = g at each window's argmax and 0
 * elsewhere, without zeroing dy first. The whole (B, OC, OH, OW) output is
 * never written: for LeNet-5's conv1 (1.2 MB in float32 at batch 64)
 * writing it, reading it back to pool it, zeroing its gradient and
 * scattering into it were passes through memory. The taps in place of
 * max_pool2d's int64 offsets halve what is stored and read back, and let
 * the adjoint write whole vectors (pool, unpool and zeroing 11 -> 8.7 % of
 * the v4 LeNet-5 step, perf). */
static void NAME(pool_image)(const conv_geom *q, const T *yb, T *y, int32_t *code) {
    const int64_t pp = q->POH * q->POW;
    for (int64_t c = 0; c < q->OC; c++)
        ISA_SYM(tg_pool_kernels).NAME(max_2x2_code)(yb + c * q->P, q->OW, q->POH, q->POW, y + c * pp,
                                                    code + c * pp);
}
/* dy: planes of n elements, rows ld apart ((OC, OH, OW) with ld = OW, n = P;
 * or the wide layout, ld = Wp, n = L, its row gaps zeroed) */
static void NAME(unpool_image)(const conv_geom *q, const T *g, const int32_t *code, int64_t ld,
                               int64_t n, T *dy) {
    const int64_t pp = q->POH * q->POW;
    for (int64_t c = 0; c < q->OC; c++)
        ISA_SYM(tg_pool_kernels).NAME(unpool_2x2_code)(g + c * pp, code + c * pp, q->POH, q->POW, q->OH,
                                                       q->OW, ld, dy + c * n);
}

/* The same pool on the lanes layout (q->fwd == CONV_FWD_LANES: LeNet's
 * conv2), one group: yt (P, OC/G) as fwd_cl leaves it, before its transpose,
 * pooled a vector of channels at a time into pt (POH POW, OC/G) and the taps
 * into ct (likewise, int32), then both transposed into the group's planes of
 * y and code. The selects are the 2x2 kernel's, lane by lane, so the values
 * and taps are its own (max_pool2d's). The planes' rows are 5 outputs wide
 * for conv2, where the 2x2 kernel ran at about twice its cost per output on
 * conv1's 14-wide rows; here each of the 25 windows is one vector step, and
 * the transpose is of the pooled quarter. */
static void NAME(pool_lanes)(const conv_geom *q, const T *yt, T *pt, int32_t *ct, T *y, int32_t *code) {
    enum { V = CONV_TB / sizeof(T) };
    typedef int32_t ivec __attribute__((vector_size(V * sizeof(int32_t))));
    const int64_t n = q->OCg, pp = q->POH * q->POW;
/* pool_kernels.h's rule for a window's maximum, and the select */
#define SEL(m, v, best) ((NAME(vec64))(((NAME(vmask))(v) & (m)) | ((NAME(vmask))(best) & ~(m))))
    for (int64_t i = 0; i < q->POH; i++)
        for (int64_t j = 0; j < q->POW; j++) {
            const T *top = yt + (2 * i * q->OW + 2 * j) * n, *bot = top + q->OW * n;
            const int64_t o = (i * q->POW + j) * n;
            for (int64_t v = 0; v < n; v += V) {
                NAME(vec64) a, b, c, d;
                memcpy(&a, top + v, sizeof a), memcpy(&b, top + n + v, sizeof b);
                memcpy(&c, bot + v, sizeof c), memcpy(&d, bot + n + v, sizeof d);
                NAME(vmask) m = TG_POOL_TAKES(a, b);
                a = SEL(m, b, a);
                const NAME(vmask) ta = m & 1;
                m = TG_POOL_TAKES(c, d);
                c = SEL(m, d, c);
                const NAME(vmask) tc = (m & 1) + 2;
                m = TG_POOL_TAKES(a, c);
                a = SEL(m, c, a);
                const ivec t = __builtin_convertvector((tc & m) | (ta & ~m), ivec);
                memcpy(pt + o + v, &a, sizeof a);
                memcpy(ct + o + v, &t, sizeof t);
            }
        }
#undef SEL
    NAME(transpose)(pt, n, pp, n, y, pp);
    for (int64_t c = 0; c < n; c++)
        for (int64_t p = 0; p < pp; p++) code[c * pp + p] = ct[p * n + c];
}

/* conv2d_max_pool2d_relu: one image's pooled output y (n elements, just
 * written) through relu, tensor_relu's y < 0 ? 0 : y, and the tap of each
 * window relu's gradient zeroes (its value not > 0: 0, -0, negative, NaN)
 * made CONV_TAP_DEAD, which the unpool writes as four zeros. */
static void NAME(relu_taps)(T *y, int32_t *code, int64_t n) {
    SIMD for (int64_t i = 0; i < n; i++) {
        const T v = y[i];
        y[i] = v < 0 ? (T)0 : v;
        code[i] = v > 0 ? code[i] : CONV_TAP_DEAD;
    }
}

/* a pooled node's image b: its pooled output and taps, s its scratch slot */
static void NAME(fwd_pooled)(const NAME(conv_run) *r, int64_t b, T *s) {
    const conv_geom *q = r->q;
    const conv_slot sl = conv_slot_of(q);
    const int64_t out = q->OC * q->POH * q->POW;
    if (q->fwd == CONV_FWD_LANES) {
        const int64_t gp = q->OCg * q->POH * q->POW, gx = (q->C / q->G) * q->Hp * q->Wp;
        const T *xp = r->x + b * q->C * q->H * q->W;
        if (q->ph || q->pw) NAME(pad)(q, xp, s + sl.xp), xp = s + sl.xp;
        /* pt, then ct, in the image's scratch (OC P elements; they take half) */
        T *pt = s + sl.img;
        int32_t *ct = (int32_t *)(pt + gp);
        for (int64_t g = 0; g < q->G; g++) {
            NAME(fwd_cl)(q, xp + g * gx, r->wt + g * q->K * q->OCg,
                         r->bias ? r->bias + g * q->OCg : NULL, s + sl.gt, NULL);
            NAME(pool_lanes)(q, s + sl.gt, pt, ct, r->y + b * out + g * gp, r->code + b * out + g * gp);
        }
    } else {
        T *img = s + sl.img;
        NAME(conv_fwd_image)(q, r->x + b * q->C * q->H * q->W, r->w, r->wt, r->bias, img, s);
        NAME(pool_image)(q, img, r->y + b * out, r->code + b * out);
    }
    if (q->relu) NAME(relu_taps)(r->y + b * out, r->code + b * out, out);
}

static void NAME(fwd_item)(void *run, int64_t b, int slot) {
    const NAME(conv_run) *r = run;
    const conv_geom *q = r->q;
    T *s = r->scratch + slot * r->slot;
    if (q->pool) {
        NAME(fwd_pooled)(r, b, s);
        return;
    }
    NAME(conv_fwd_image)(q, r->x + b * q->C * q->H * q->W, r->w, r->wt, r->bias,
                         r->y + b * q->OC * q->P, s);
}
static void NAME(conv_fwd)(const tape_node *n, const conv_geom *q, int threads) {
    NAME(conv_run) r = {.q = q, .x = n->in[0]->data, .w = n->in[1]->data,
                        .bias = n->in[2] ? n->in[2]->data : NULL, .y = n->out->data,
                        .code = q->pool ? n->saved[1]->data : NULL,
                        .scratch = n->saved[0]->data, .slot = conv_slot_of(q).total};
    /* W^T per group (K, OC/G) for the direct kernel, in slot 0, read by all threads */
    T *wt = r.scratch + conv_slot_of(q).wt;
    r.wt = wt;
    if (q->fwd == CONV_FWD_LANES)
        for (int64_t g = 0; g < q->G; g++)
            for (int64_t o = 0; o < q->OCg; o++)
                for (int64_t k = 0; k < q->K; k++)
                    wt[(g * q->K + k) * q->OCg + o] = r.w[(g * q->OCg + o) * q->K + k];
    conv_par(q->B, threads, NAME(fwd_item), &r);
}
/* chunk c's images, their dW and db into part c: (wsize) dW then (OC) db */
static void NAME(bwd_item)(void *run, int64_t c, int slot) {
    const NAME(conv_run) *r = run;
    const conv_geom *q = r->q;
    T *pc = r->parts ? r->parts + c * (r->wsize + q->OC) : NULL, *s = r->scratch + slot * r->slot;
    /* Unpooled into the wide layout where the backward reads only that (LeNet's
     * conv1): the widening copy is then not made. */
    const bool wide_only = q->wide && q->dwp != CONV_DW_LANES;
    for (int64_t b = c * CONV_CHUNK; b < q->B && b < (c + 1) * CONV_CHUNK; b++) {
        const T *gb;
        if (q->pool) { /* the image's gradient before pooling, in the scratch */
            const int64_t out = q->OC * q->POH * q->POW;
            const conv_slot sl = conv_slot_of(q);
            if (wide_only) {
                NAME(unpool_image)(q, r->g + b * out, r->code + b * out, q->Wp, q->L, s + sl.yw);
                gb = NULL;
            } else {
                NAME(unpool_image)(q, r->g + b * out, r->code + b * out, q->OW, q->P, s + sl.img);
                gb = s + sl.img;
            }
        } else {
            gb = r->g + b * q->OC * q->P;
        }
        NAME(conv_bwd_image)(q, r->x + b * q->C * q->H * q->W, r->w, gb, r->dw ? pc : NULL,
                             r->db ? pc + r->wsize : NULL,
                             r->dx ? r->dx + b * q->C * q->H * q->W : NULL, s);
    }
}
static void NAME(conv_bwd)(const tape_node *n, const conv_geom *q, int threads,
                           tensor *const *gin, void *scratch_, void *parts_) {
    T *parts = parts_;
    int64_t wsize = n->in[1]->size;
    NAME(conv_run) r = {.q = q, .x = n->in[0]->data, .w = n->in[1]->data,
                        .g = n->out->grad->data, .scratch = scratch_, .parts = parts,
                        .code = q->pool ? n->saved[1]->data : NULL,
                        .dx = gin[0] ? gin[0]->data : NULL, .slot = conv_slot_of(q).total,
                        .wsize = wsize, .dw = gin[1] != NULL, .db = gin[2] != NULL};
    int64_t chunks = (q->B + CONV_CHUNK - 1) / CONV_CHUNK;
    conv_par(chunks, threads, NAME(bwd_item), &r);
    if (gin[2]) /* chunk sums in chunk order: the same bits for any thread count */
        for (int64_t c = 0; c < chunks; c++)
            for (int64_t o = 0; o < q->OC; o++)
                ((T *)gin[2]->data)[o] += parts[c * (wsize + q->OC) + wsize + o];
    if (!gin[1]) return;
    T *dw = gin[1]->data;
    for (int64_t c = 0; c < chunks; c++) {
        const T *pc = parts + c * (wsize + q->OC);
        if (!q->dw_t) {
            SIMD for (int64_t i = 0; i < wsize; i++) dw[i] += pc[i];
            continue;
        }
        for (int64_t k = 0; k < q->G; k++) /* part k is (K, OC/G) */
            for (int64_t o = 0; o < q->OCg; o++) {
                T *d = dw + (k * q->OCg + o) * q->K;
                const T *src = pc + k * q->OCg * q->K + o;
                for (int64_t i = 0; i < q->K; i++) d[i] += src[i * q->OCg];
            }
    }
}

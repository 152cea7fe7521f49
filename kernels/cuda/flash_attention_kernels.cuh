/* flash_attention_kernels.cuh — the device code of fused causal attention
 * (flash_attention.cu launches it). Kept apart from the launchers so the CPU
 * emulator in tests/emu can compile these very kernels and run them on
 * machines without a GPU. Include after an environment that provides
 * device.cuh, nvcuda::wmma and dynamic_smem(): flash_attention.cu (CUDA) or
 * tests/emu/cuda_emu.hpp (CPU).
 *
 * The algorithm is FlashAttention-2's (Dao, 2023): a block takes 64 rows of
 * one (batch, head), walks the key tiles up to the causal diagonal, and keeps
 * the softmax online (running max m and sum l per row), so the T x T scores
 * never reach global memory. The forward pass saves each row's log-sum-exp;
 * the backward pass recomputes the probabilities from it. Products run on
 * tensor cores through WMMA (bf16 operands, fp32 accumulation); the softmax
 * is fp32 in shared memory.
 *
 * The backward pass is two kernels, not FlashAttention-2's one: dK and dV
 * per key tile, then dQ per query tile. One kernel would add each key tile's
 * share of dQ with atomics, whose order (and so rounding) changes from run
 * to run; this project's kernels are deterministic (ops_cuda.cuh), so dQ
 * recomputes the scores and their gradient instead: 7 tile products per
 * (query tile, key tile) pair in the backward pass where one kernel has 5.
 *
 * Layouts: qkv [B, T, 3, NH, HS] and out, dout [B, T, NH, HS] are read and
 * written in place (no permutes); lse and delta are [B, NH, T] fp32.
 *
 * Work split inside a block: 4 warps, warp w owns rows 16w..16w+15 of the
 * tile for the products, and for the elementwise softmax work lanes 2r and
 * 2r+1 share row r, taking alternate columns (fewer shared-memory bank
 * conflicts than contiguous halves).
 */
#ifndef SAGERUN_FLASH_ATTENTION_KERNELS_CUH
#define SAGERUN_FLASH_ATTENTION_KERNELS_CUH

#include <stdint.h>

namespace flash {

using namespace nvcuda;

constexpr int TILE = 64; /* query rows per block, and keys per tile */
constexpr int WARPS = 4;
constexpr int THREADS = WARPS * 32;
constexpr int FRAG = 16; /* WMMA's 16 x 16 x 16 */
constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;

typedef wmma::fragment<wmma::matrix_a, FRAG, FRAG, FRAG, bf16, wmma::row_major> frag_a;
typedef wmma::fragment<wmma::matrix_b, FRAG, FRAG, FRAG, bf16, wmma::row_major> frag_b;
typedef wmma::fragment<wmma::matrix_b, FRAG, FRAG, FRAG, bf16, wmma::col_major> frag_bt; /* B^T as stored */
typedef wmma::fragment<wmma::accumulator, FRAG, FRAG, FRAG, float> frag_acc;

/* Row strides in shared memory, in elements. Each pads a row by 16 bytes:
 * that keeps every 16-row block and 16-column step on WMMA's 32-byte
 * alignment and its ldm a multiple of 16 bytes, and shifts successive rows
 * across the banks. */
template <int HS> struct strides {
    static_assert(HS % FRAG == 0 && HS <= 128, "head size: a multiple of 16, at most 128");
    static constexpr int tile = HS + 8;                      /* bf16 [TILE][HS] tiles of q, k, v, dout */
    static constexpr int wide = (HS > TILE ? HS : TILE) + 4; /* fp32 per-warp [16][max(TILE, HS)] */
    static constexpr int probs = TILE + 8;                   /* bf16 per-warp [16][TILE] */
};

/* Hands out 128-byte-aligned pieces of the dynamic shared memory. With a
 * null base it only counts, which is how the host sizes the launch. */
struct smem_cursor {
    uintptr_t next;
    template <typename T> __host__ __device__ T *take(size_t count)
    {
        T *piece = (T *)next;
        next += (count * sizeof(T) + 127) & ~(size_t)127;
        return piece;
    }
};

template <int HS> struct forward_smem {
    bf16 *q, *k, *v; /* [TILE][strides::tile] */
    float *s, *o;    /* per warp [16][strides::wide]: scores, output so far */
    bf16 *p;         /* per warp [16][strides::probs]: probabilities */
    size_t bytes;
    __host__ __device__ explicit forward_smem(uintptr_t base)
    {
        typedef strides<HS> S;
        smem_cursor c = {base};
        q = c.take<bf16>(TILE * S::tile);
        k = c.take<bf16>(TILE * S::tile);
        v = c.take<bf16>(TILE * S::tile);
        s = c.take<float>(WARPS * FRAG * S::wide);
        o = c.take<float>(WARPS * FRAG * S::wide);
        p = c.take<bf16>(WARPS * FRAG * S::probs);
        bytes = c.next - base;
    }
};

/* Both backward kernels: the tiles they hold fixed (`own`: k, v for dK/dV;
 * q, dout for dQ) and those they walk. */
template <int HS> struct backward_smem {
    bf16 *q, *dout, *k, *v; /* [TILE][strides::tile] */
    float *lse2, *delta;    /* [TILE]: the query rows' log2-sum-exp and rowsum(dout * out) */
    float *s, *dp;          /* per warp [16][strides::wide]: scores (then probabilities), d(probabilities) */
    bf16 *p, *ds;           /* per warp [16][strides::probs]: probabilities, d(scores) */
    size_t bytes;
    __host__ __device__ explicit backward_smem(uintptr_t base)
    {
        typedef strides<HS> S;
        smem_cursor c = {base};
        q = c.take<bf16>(TILE * S::tile);
        dout = c.take<bf16>(TILE * S::tile);
        k = c.take<bf16>(TILE * S::tile);
        v = c.take<bf16>(TILE * S::tile);
        lse2 = c.take<float>(TILE);
        delta = c.take<float>(TILE);
        s = c.take<float>(WARPS * FRAG * S::wide);
        dp = c.take<float>(WARPS * FRAG * S::wide);
        p = c.take<bf16>(WARPS * FRAG * S::probs);
        ds = c.take<bf16>(WARPS * FRAG * S::probs);
        bytes = c.next - base;
    }
};

/* Where a thread of these kernels works: the block's (batch, head), the
 * thread's warp, and its row r of the warp's 16 and column parity `half`
 * (lanes 2r and 2r + 1 share row r). */
struct position {
    int C, warp, r, half, bh, b, h;
    size_t row3; /* qkv's row stride, 3C */
    size_t head; /* offset in qkv (and dqkv) of this head's q in row 0 of batch b */
    __device__ position(int T, int NH, int HS)
    {
        C = NH * HS;
        warp = threadIdx.x / 32;
        r = threadIdx.x % 32 / 2;
        half = threadIdx.x % 2;
        bh = blockIdx.y;
        b = bh / NH;
        h = bh % NH;
        row3 = 3 * (size_t)C;
        head = (size_t)b * T * row3 + (size_t)h * HS;
    }
};

/* Rows row0.. of a [T][HS] matrix whose rows are `stride` elements apart
 * into a [TILE][strides::tile] tile; rows past T become zeros (so they add
 * nothing to a product: their weight is 0, and 0 x garbage could be NaN). */
template <int HS> __device__ void load_tile(bf16 *tile, const bf16 *src, size_t stride, int row0, int T)
{
    constexpr int vectors = HS / 8;
    for (int i = threadIdx.x; i < TILE * vectors; i += THREADS) {
        int r = i / vectors, c = (i % vectors) * 8;
        bf16 *dst = tile + r * strides<HS>::tile + c;
        if (row0 + r < T)
            copy16(dst, src + (size_t)(row0 + r) * stride + c);
        else
            zero16(dst);
    }
}

/* out[16][TILE] (row stride strides::wide) = a[16 rows of warp][HS] . b[TILE][HS]^T,
 * both from bf16 tiles. */
template <int HS> __device__ void rows_times_tile_t(float *out, const bf16 *a, const bf16 *b)
{
    constexpr int ld = strides<HS>::tile;
    for (int n = 0; n < TILE / FRAG; n++) {
        frag_acc acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int k = 0; k < HS / FRAG; k++) {
            frag_a fa;
            frag_bt fb;
            wmma::load_matrix_sync(fa, a + k * FRAG, ld);
            wmma::load_matrix_sync(fb, b + n * FRAG * ld + k * FRAG, ld);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        wmma::store_matrix_sync(out + n * FRAG, acc, strides<HS>::wide, wmma::mem_row_major);
    }
}

/* acc[HS / 16] += p[16][TILE] (row stride strides::probs) . tile[TILE][HS]. */
template <int HS> __device__ void probs_times_tile(frag_acc *acc, const bf16 *p, const bf16 *tile)
{
    for (int k = 0; k < TILE / FRAG; k++) {
        frag_a fa;
        wmma::load_matrix_sync(fa, p + k * FRAG, strides<HS>::probs);
        for (int n = 0; n < HS / FRAG; n++) {
            frag_b fb;
            wmma::load_matrix_sync(fb, tile + k * FRAG * strides<HS>::tile + n * FRAG, strides<HS>::tile);
            wmma::mma_sync(acc[n], fa, fb, acc[n]);
        }
    }
}

/* Writes a warp's 16 x HS accumulators, times `scale`, as bf16 rows
 * row0.. of a matrix with row stride `stride` (rows past T are not
 * written), staging them through the warp's fp32 scratch. */
template <int HS>
__device__ void store_rows(bf16 *dst, size_t stride, int row0, int T, frag_acc *acc, float scale, float *scratch)
{
    constexpr int ld = strides<HS>::wide;
    for (int n = 0; n < HS / FRAG; n++)
        wmma::store_matrix_sync(scratch + n * FRAG, acc[n], ld, wmma::mem_row_major);
    __syncwarp();
    int lane = threadIdx.x % 32, r = lane / 2, half = lane % 2;
    if (row0 + r < T)
        for (int c = half; c < HS; c += 2)
            dst[(size_t)(row0 + r) * stride + c] = to_bf16(scratch[r * ld + c] * scale);
    __syncwarp(); /* scratch is free again */
}

/* ---- forward ---- */

/* grid (ceil(T / TILE), B * NH), THREADS threads, forward_smem<HS> bytes.
 * out [B, T, NH, HS] = softmax(q k^T / sqrt(HS), causal) v; lse [B, NH, T]
 * = log of the sum over the row's visible keys of exp(score), the softmax denominator.
 * scale_log2 = log2(e) / sqrt(HS): scores in base 2, so exp2 suffices. */
template <int HS>
__global__ void __launch_bounds__(THREADS)
    flash_forward_kernel(bf16 *out, float *lse, const bf16 *qkv, int T, int NH, float scale_log2)
{
    typedef strides<HS> S;
    forward_smem<HS> sm((uintptr_t)dynamic_smem());
    const position at(T, NH, HS);
    const int C = at.C, warp = at.warp, r = at.r, half = at.half;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * TILE; /* the longest rows start first */
    const int query = q0 + warp * FRAG + r;
    const size_t row3 = at.row3;
    const bf16 *head = qkv + at.head;
    float *s = sm.s + warp * FRAG * S::wide, *o = sm.o + warp * FRAG * S::wide;
    bf16 *p = sm.p + warp * FRAG * S::probs;

    load_tile<HS>(sm.q, head, row3, q0, T);
    for (int c = half; c < HS; c += 2)
        o[r * S::wide + c] = 0.0f;
    float m = -INFINITY, l = 0.0f; /* this row's running max (base-2 scores) and sum */
    const int keys = min(q0 + TILE, T);
    for (int k0 = 0; k0 < keys; k0 += TILE) {
        __syncthreads(); /* the previous k, v are no longer read (and q is in) */
        load_tile<HS>(sm.k, head + C, row3, k0, T);
        load_tile<HS>(sm.v, head + 2 * C, row3, k0, T);
        __syncthreads();
        rows_times_tile_t<HS>(s, sm.q + warp * FRAG * S::tile, sm.k);
        __syncwarp();

        float *srow = s + r * S::wide, tile_max = -INFINITY;
        for (int c = half; c < TILE; c += 2) {
            float x = k0 + c <= query ? srow[c] * scale_log2 : -INFINITY;
            srow[c] = x;
            tile_max = fmaxf(tile_max, x);
        }
        float m_new = fmaxf(m, fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1)));
        /* Key 0 is in the first tile and no query precedes it, so m_new is
         * finite from the first tile on; m = -inf then just gives alpha 0. */
        float alpha = exp2f(m - m_new), sum = 0.0f;
        for (int c = half; c < TILE; c += 2) {
            /* the rounded weight in both the sum and the product, so each row's weights sum to 1 */
            bf16 w = to_bf16(exp2f(srow[c] - m_new));
            p[r * S::probs + c] = w;
            sum += f32(w);
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * alpha + sum;
        m = m_new;
        for (int c = half; c < HS; c += 2)
            o[r * S::wide + c] *= alpha;
        __syncwarp();

        frag_acc acc[HS / FRAG];
        for (int n = 0; n < HS / FRAG; n++)
            wmma::load_matrix_sync(acc[n], o + n * FRAG, S::wide, wmma::mem_row_major);
        probs_times_tile<HS>(acc, p, sm.v);
        for (int n = 0; n < HS / FRAG; n++)
            wmma::store_matrix_sync(o + n * FRAG, acc[n], S::wide, wmma::mem_row_major);
        __syncwarp();
    }
    if (query < T) {
        float inv = 1.0f / l;
        bf16 *dst = out + ((size_t)at.b * T + query) * C + (size_t)at.h * HS;
        for (int c = half; c < HS; c += 2)
            dst[c] = to_bf16(o[r * S::wide + c] * inv);
        if (half == 0)
            lse[(size_t)at.bh * T + query] = (m + log2f(l)) * LN2;
    }
}

/* ---- backward ---- */

/* A warp per row of [B, T, NH]: delta[b, h, t] = dout[b, t, h] . out[b, t, h],
 * which equals sum over keys of P * dP, the term the softmax's gradient
 * subtracts. blocks of 256 threads, ceil(B * T * NH / 8) blocks. */
__global__ void flash_delta_kernel(float *delta, const bf16 *dout, const bf16 *out, int B, int T, int NH, int HS)
{
    size_t row = (size_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= (size_t)B * T * NH)
        return;
    int lane = threadIdx.x % 32, h = (int)(row % NH);
    size_t bt = row / NH, b = bt / T, t = bt % T;
    const bf16 *d = dout + row * HS, *o = out + row * HS;
    float sum = 0.0f;
    for (int c = lane; c < HS; c += 32)
        sum += f32(d[c]) * f32(o[c]);
    sum = warp_sum(sum);
    if (lane == 0)
        delta[(b * NH + h) * T + t] = sum;
}

/* The query rows q0.. of the current tile: q, dout, and their lse (in
 * base 2) and delta. */
template <int HS>
__device__ void load_query_rows(backward_smem<HS> &sm, const bf16 *qhead, const bf16 *dhead, const float *lse,
                                const float *delta, int q0, int T, int C)
{
    load_tile<HS>(sm.q, qhead, 3 * (size_t)C, q0, T);
    load_tile<HS>(sm.dout, dhead, C, q0, T);
    for (int i = threadIdx.x; i < TILE; i += THREADS) {
        sm.lse2[i] = q0 + i < T ? lse[q0 + i] * LOG2E : 0.0f;
        sm.delta[i] = q0 + i < T ? delta[q0 + i] : 0.0f;
    }
}

/* grid (ceil(T / TILE), B * NH), THREADS threads, backward_smem<HS> bytes.
 * dk, dv of keys k0..k0+63 into dqkv (written, not added), walking the
 * query tiles from the diagonal on. Per warp, transposed: 16 keys x 64
 * queries, P^T = exp2(K Q^T scale - lse), dP^T = V dout^T, dS^T = P^T
 * (dP^T - delta); dv += P^T dout, dk += dS^T q. lse and delta start at
 * this head's row: [T] each. */
template <int HS>
__global__ void __launch_bounds__(THREADS)
    flash_backward_kv_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse, const float *delta,
                             int T, int NH, float scale_log2, float scale)
{
    typedef strides<HS> S;
    backward_smem<HS> sm((uintptr_t)dynamic_smem());
    const position at(T, NH, HS);
    const int C = at.C, warp = at.warp, r = at.r, half = at.half;
    const int k0 = blockIdx.x * TILE; /* the first key tiles have the most queries: they start first */
    const int key = k0 + warp * FRAG + r;
    const size_t row3 = at.row3;
    const bf16 *qhead = qkv + at.head, *dhead = dout + (size_t)at.b * T * C + (size_t)at.h * HS;
    float *s = sm.s + warp * FRAG * S::wide, *dp = sm.dp + warp * FRAG * S::wide;
    bf16 *p = sm.p + warp * FRAG * S::probs, *ds = sm.ds + warp * FRAG * S::probs;
    lse += (size_t)at.bh * T;
    delta += (size_t)at.bh * T;

    load_tile<HS>(sm.k, qhead + C, row3, k0, T);
    load_tile<HS>(sm.v, qhead + 2 * C, row3, k0, T);
    frag_acc dk[HS / FRAG], dv[HS / FRAG];
    for (int n = 0; n < HS / FRAG; n++) {
        wmma::fill_fragment(dk[n], 0.0f);
        wmma::fill_fragment(dv[n], 0.0f);
    }
    for (int q0 = k0; q0 < T; q0 += TILE) {
        __syncthreads(); /* the previous query tile is no longer read (and k, v are in) */
        load_query_rows<HS>(sm, qhead, dhead, lse, delta, q0, T, C);
        __syncthreads();
        rows_times_tile_t<HS>(s, sm.k + warp * FRAG * S::tile, sm.q);
        rows_times_tile_t<HS>(dp, sm.v + warp * FRAG * S::tile, sm.dout);
        __syncwarp();
        for (int c = half; c < TILE; c += 2) {
            int query = q0 + c;
            float w = key <= query && query < T ? exp2f(s[r * S::wide + c] * scale_log2 - sm.lse2[c]) : 0.0f;
            p[r * S::probs + c] = to_bf16(w);
            ds[r * S::probs + c] = to_bf16(w * (dp[r * S::wide + c] - sm.delta[c]));
        }
        __syncwarp();
        probs_times_tile<HS>(dv, p, sm.dout);
        probs_times_tile<HS>(dk, ds, sm.q);
    }
    store_rows<HS>(dqkv + at.head + C, row3, k0 + warp * FRAG, T, dk, scale, s);
    store_rows<HS>(dqkv + at.head + 2 * C, row3, k0 + warp * FRAG, T, dv, 1.0f, s);
}

/* grid (ceil(T / TILE), B * NH), THREADS threads, backward_smem<HS> bytes.
 * dq of queries q0..q0+63 into dqkv (written), walking the key tiles up to
 * the diagonal: per warp 16 queries x 64 keys, P = exp2(q K^T scale - lse),
 * dP = dout V^T, dS = P (dP - delta); dq += dS K. */
template <int HS>
__global__ void __launch_bounds__(THREADS)
    flash_backward_q_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse, const float *delta,
                            int T, int NH, float scale_log2, float scale)
{
    typedef strides<HS> S;
    backward_smem<HS> sm((uintptr_t)dynamic_smem());
    const position at(T, NH, HS);
    const int C = at.C, warp = at.warp, r = at.r, half = at.half;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * TILE, row = warp * FRAG + r, query = q0 + row;
    const size_t row3 = at.row3;
    const bf16 *qhead = qkv + at.head;
    float *s = sm.s + warp * FRAG * S::wide, *dp = sm.dp + warp * FRAG * S::wide;
    bf16 *ds = sm.ds + warp * FRAG * S::probs;

    load_query_rows<HS>(sm, qhead, dout + (size_t)at.b * T * C + (size_t)at.h * HS, lse + (size_t)at.bh * T,
                        delta + (size_t)at.bh * T, q0, T, C);
    frag_acc dq[HS / FRAG];
    for (int n = 0; n < HS / FRAG; n++)
        wmma::fill_fragment(dq[n], 0.0f);
    const int keys = min(q0 + TILE, T);
    for (int k0 = 0; k0 < keys; k0 += TILE) {
        __syncthreads(); /* the previous k, v are no longer read (and the query rows are in) */
        load_tile<HS>(sm.k, qhead + C, row3, k0, T);
        load_tile<HS>(sm.v, qhead + 2 * C, row3, k0, T);
        __syncthreads();
        rows_times_tile_t<HS>(s, sm.q + warp * FRAG * S::tile, sm.k);
        rows_times_tile_t<HS>(dp, sm.dout + warp * FRAG * S::tile, sm.v);
        __syncwarp();
        for (int c = half; c < TILE; c += 2) {
            float w = k0 + c <= query && query < T ? exp2f(s[r * S::wide + c] * scale_log2 - sm.lse2[row]) : 0.0f;
            ds[r * S::probs + c] = to_bf16(w * (dp[r * S::wide + c] - sm.delta[row]));
        }
        __syncwarp();
        probs_times_tile<HS>(dq, ds, sm.k);
    }
    store_rows<HS>(dqkv + at.head, row3, q0 + warp * FRAG, T, dq, scale, s);
}

} /* namespace flash */

#endif

/*
 * The detection kernel in C: the same arithmetic as the numpy kernel in engine.py,
 * one device and one reading at a time.
 *
 * Every operation is the one the numpy kernel performs, in the same order, with
 * numpy's semantics for NaN (maximum/minimum propagate it, fmax/fmin ignore it), so
 * both give the same bits. Built with -ffp-contract=off: a fused multiply-add rounds
 * once where numpy rounds twice. Called through ctypes; no Python API, no allocation,
 * nothing from libc beyond <math.h>.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

#define IOTPM_KERNEL_ABI 2
#define MAX_CHANNELS 64
#define N_CH 6 /* threshold, iso10816, spike, drift, rate_of_change, flatline */
#define N_DEV 2 /* dropout, multivariate */
#define T2_HISTORY 4

/* offsets into a device's state vector, in this order (native.OFFSETS) */
enum {
    O_MU, O_S, O_S_MIN, O_DSCALE, O_LAST_X, O_RUN, O_FLAT_THR, O_CP, O_CN, O_FAST, O_SLOW,
    O_ZMAX, O_DMAX, O_SMOOTH, O_MEW, O_N, O_LAST_T, O_DT_EXP, O_ALARM, O_ABOVE, O_BELOW,
    O_COOL, O_HEALTH, O_T2_ON, O_ALARM_SINCE, O_T2_HIST, O_P, O_COUNT
};

/* parameters, in this order (native.PARAMS) */
enum {
    P_ADAPT, P_DECAY, P_CUSUM_CLIP, P_ADAPT_CLIP, P_CUSUM_K, P_CUSUM_H, P_TAIL, P_SPIKE_Z,
    P_ROC_Z, P_DROPOUT, P_TREND, P_TREND_SLOW, P_T2_CLIP, P_T2_LIMIT, P_MEWMA_RATE,
    P_EWMA_LIMIT, P_RAISE, P_CLEAR, P_MIN_DURATION, P_CLEAR_DURATION, P_COOLDOWN,
    P_DROPOUT_ALARMS, P_ISO_BC, P_ISO_CD, P_COUNT
};

/* numpy.maximum / numpy.minimum: NaN in the first argument wins, then in the second */
static inline double np_maximum(double a, double b) { return (a >= b || isnan(a)) ? a : b; }
static inline double np_minimum(double a, double b) { return (a <= b || isnan(a)) ? a : b; }
/* numpy.fmax: NaN is ignored unless both are */
static inline double np_fmax(double a, double b) { return (a >= b || isnan(b)) ? a : b; }

/* numpy.nan_to_num with posinf=1e6 and the default neginf */
static inline double nan_to_num(double v) {
    if (isnan(v)) return 0.0;
    if (isinf(v)) return v > 0 ? 1e6 : -DBL_MAX;
    return v;
}

/* the median of five by the min/max network of detectors._median5 */
static inline double median5(double a, double b, double c, double d, double e) {
    double f = np_maximum(np_minimum(a, b), np_minimum(c, d));
    double g = np_minimum(np_maximum(a, b), np_maximum(c, d));
    return np_maximum(np_minimum(e, f), np_minimum(np_maximum(e, f), g));
}

/* the terms v_a (P v)_a of v'Pv, times `on`, summed like detectors._quadratic */
static inline double quadratic(const double *p, const double *vec, int64_t c, double on, double *terms) {
    double total = 0.0;
    for (int64_t a = 0; a < c; a++) {
        double pv = p[a * c] * vec[0];
        for (int64_t b = 1; b < c; b++) pv = pv + p[a * c + b] * vec[b];
        terms[a] = (vec[a] * pv) * on;
        total = a == 0 ? terms[0] : total + terms[a];
    }
    return total;
}

#ifndef IOTPM_KERNEL_SOURCE
#define IOTPM_KERNEL_SOURCE "unknown"
#endif

/* the interface version, and the sha256 of the source this library was built from */
int iotpm_kernel_abi(void) { return IOTPM_KERNEL_ABI; }
const char *iotpm_kernel_source(void) { return IOTPM_KERNEL_SOURCE; }

/*
 * One channel of one device over its n readings: the static limits and ISO zone and,
 * with statistics, the baseline, CUSUM, step and trend recursions. The channel's
 * state lives in locals for the whole run. Writes its six scores, expected level and
 * scale, and its input to the multivariate detector into zmv (all with stride c).
 *
 * gate[j] is 1 while the machine runs and has settled: below 1 the reading is missing
 * to the statistics and, from 0 to 1, the next reading's step starts afresh; at 0 or
 * below (stopped, or just started) its low limit does not apply either (a stopped
 * pump's pressure is below it by design). Below 0 (idle at a learned floor) the step
 * from the floor to the next reading is scored.
 */
static void channel_pass(const double *restrict prm, int64_t n, int64_t c, int64_t k, int statistics,
                         double *restrict v, const int64_t *restrict off, const double *restrict x, double lo,
                         double hi, int vibration, const double *restrict gate, double *restrict ch,
                         double *restrict expected,
                         double *restrict scale, double *restrict zmv) {
    const double a = prm[P_ADAPT], decay = prm[P_DECAY], tail = prm[P_TAIL];
    const double clip_cusum = prm[P_CUSUM_CLIP], clip_adapt = prm[P_ADAPT_CLIP], t2_clip = prm[P_T2_CLIP];
    const double k_ref = prm[P_CUSUM_K], h_ref = prm[P_CUSUM_H], spike_z = prm[P_SPIKE_Z], roc_z = prm[P_ROC_Z];
    const double trend_rate = prm[P_TREND], trend_slow = prm[P_TREND_SLOW];
    const double iso_bc = prm[P_ISO_BC], iso_cd = prm[P_ISO_CD];
    double span = (isfinite(lo) && isfinite(hi)) ? hi - lo : np_fmax(fabs(hi), fabs(lo));
    span = (isfinite(span) && span > 0) ? span : 1.0;
    double mu = v[off[O_MU] + k], s = v[off[O_S] + k], typ = v[off[O_DSCALE] + k], last_x = v[off[O_LAST_X] + k];
    double run = v[off[O_RUN] + k], cp = v[off[O_CP] + k], cn = v[off[O_CN] + k], fast = v[off[O_FAST] + k];
    double slow = v[off[O_SLOW] + k], zmax = v[off[O_ZMAX] + k], dmax = v[off[O_DMAX] + k];
    const double s_min = v[off[O_S_MIN] + k], flat_thr = v[off[O_FLAT_THR] + k];
    const int smooth = v[off[O_SMOOTH] + k] > 0;
    for (int64_t j = 0; j < n; j++) {
        const double xr = x[j * c + k];
        const int on = gate[j] >= 1.0, low_on = gate[j] > 0.0;
        double *restrict out = ch + (j * c + k) * N_CH;
        const double over = np_fmax(xr - hi, low_on ? lo - xr : NAN);
        out[0] = nan_to_num(over >= 0 ? 1.0 + over / span : 0.0);
        out[1] = nan_to_num(vibration ? (xr >= iso_cd ? xr / iso_cd : (xr >= iso_bc ? 0.5 : 0.0)) : 0.0);
        if (!statistics) {
            expected[j * c + k] = NAN;
            scale[j * c + k] = NAN;
            continue;
        }
        const double xk = on ? xr : NAN;
        const int present = !isnan(xk);
        const double x0 = present ? xk : 0.0, mf = present ? 1.0 : 0.0, am = a * mf;
        const double dx = xk - last_x, step = fabs(dx);
        const double step0 = isnan(step) ? 0.0 : step, step_rate = a * (isnan(dx) ? 0.0 : 1.0);
        run = xk == last_x ? run + 1.0 : 0.0;
        if (present) last_x = xk;
        else if (!on && gate[j] >= 0.0) last_x = NAN;
        const double mu_b = mu, s_b = s, zmax_b = zmax, dmax_b = dmax, typ_b = typ, fast_b = fast;
        expected[j * c + k] = mu_b;
        scale[j * c + k] = s_b;
        const double z = ((x0 - mu_b) * mf) / s_b;
        const double ratio = step / typ_b;
        zmax = np_fmax(zmax_b * decay, fabs(z));
        dmax = np_fmax(dmax_b * decay, ratio);
        const double zc = np_minimum(np_maximum(z, -clip_cusum), clip_cusum);
        const double r = np_minimum(np_maximum(z, -clip_adapt), clip_adapt);
        const double up = np_maximum((cp + zc * 1.0) - k_ref, 0.0);
        const double down = np_maximum((cn + zc * -1.0) - k_ref, 0.0);
        const double cusum = np_maximum(up, down);
        cp = up * (up <= h_ref ? 1.0 : 0.0);
        cn = down * (down <= h_ref ? 1.0 : 0.0);
        mu = mu_b + (am * r) * s_b;
        s = np_maximum(s_b * sqrt(((r * r - 1.0) * am) + 1.0), s_min);
        typ = typ_b + (np_minimum(step0, typ_b * 4.0) - typ_b) * step_rate;
        fast = fast_b + ((x0 - fast_b) * mf) * trend_rate;
        slow = slow + ((x0 - slow) * mf) * trend_slow;
        const double z_all = (xk - mu_b) / s_b;
        out[2] = nan_to_num(fabs(z_all) / np_fmax(spike_z, tail * zmax_b));
        out[3] = nan_to_num(cusum / h_ref);
        out[4] = nan_to_num(ratio / np_fmax(roc_z, tail * dmax_b));
        out[5] = nan_to_num(run / flat_thr);
        /* a smooth channel enters the multivariate detectors by its deviation from its
           own recent level */
        const double zk = smooth ? (xk - fast_b) / s_b : z_all;
        const double clipped = np_minimum(np_maximum(zk, -t2_clip), t2_clip);
        zmv[j * c + k] = isnan(clipped) ? 0.0 : clipped;
    }
    if (!statistics) return;
    v[off[O_MU] + k] = mu;
    v[off[O_S] + k] = s;
    v[off[O_DSCALE] + k] = typ;
    v[off[O_LAST_X] + k] = last_x;
    v[off[O_RUN] + k] = run;
    v[off[O_CP] + k] = cp;
    v[off[O_CN] + k] = cn;
    v[off[O_FAST] + k] = fast;
    v[off[O_SLOW] + k] = slow;
    v[off[O_ZMAX] + k] = zmax;
    v[off[O_DMAX] + k] = dmax;
}

/* The device's interval: the gap ratio (the dropout score) and the expected interval. */
static void interval_pass(const double *restrict prm, int64_t n, double *restrict v, const int64_t *restrict off,
                          const int64_t *restrict ts, double *restrict dev) {
    const double a = prm[P_ADAPT], factor = prm[P_DROPOUT];
    double last_t = v[off[O_LAST_T]], dt_exp = v[off[O_DT_EXP]];
    for (int64_t j = 0; j < n; j++) {
        const double tf = (double)ts[j], dt = tf - last_t;
        dev[j * N_DEV] = nan_to_num((dt / dt_exp) / factor);
        const double rate = a * (dt > 0 ? 1.0 : 0.0);
        dt_exp = dt_exp + (np_minimum(isnan(dt) ? 0.0 : dt, dt_exp * 3.0) - dt_exp) * rate;
        last_t = tf;
    }
    v[off[O_LAST_T]] = last_t;
    v[off[O_DT_EXP]] = dt_exp;
}

/*
 * Step by step over one device: with statistics, the multivariate detector (T² of the
 * z-vector, rolling median, and its EWMA) from the zmv the channel passes left in
 * `share`, overwritten by each channel's share; then the score, the hysteresis and
 * the health EWMA.
 */
static void device_pass(const double *restrict prm, int64_t n, int64_t c, int statistics, double *restrict v,
                        const int64_t *restrict off, const int64_t *restrict ts, double *restrict score,
                        double *restrict alarm_out, double *restrict raised, double *restrict cleared,
                        const double *restrict ch, double *restrict dev, double *restrict share) {
    const double t2_limit = prm[P_T2_LIMIT], ewma_limit = prm[P_EWMA_LIMIT];
    const double mewma = prm[P_MEWMA_RATE], keep = 1.0 - prm[P_MEWMA_RATE];
    const double raise_level = prm[P_RAISE], clear_level = prm[P_CLEAR], cooldown = prm[P_COOLDOWN];
    const double min_duration = prm[P_MIN_DURATION], clear_duration = prm[P_CLEAR_DURATION], a = prm[P_ADAPT];
    const int dropout_alarms = prm[P_DROPOUT_ALARMS] > 0;
    const double *p = v + off[O_P], t2_on = v[off[O_T2_ON]];
    double *mew = v + off[O_MEW], *hist = v + off[O_T2_HIST];
    double above = v[off[O_ABOVE]], below = v[off[O_BELOW]], cool = v[off[O_COOL]], alarm = v[off[O_ALARM]];
    double health = v[off[O_HEALTH]], since = v[off[O_ALARM_SINCE]];
    double zmv[MAX_CHANNELS], terms[MAX_CHANNELS], dterms[MAX_CHANNELS];
    for (int64_t j = 0; j < n; j++) {
        double *restrict dvr = dev + j * N_DEV;
        if (statistics) {
            double *restrict sh = share + j * c;
            for (int64_t k = 0; k < c; k++) zmv[k] = sh[k];
            const double t2 = quadratic(p, zmv, c, t2_on, terms);
            const double median = median5(hist[0], hist[1], hist[2], hist[3], t2);
            hist[0] = hist[1];
            hist[1] = hist[2];
            hist[2] = hist[3];
            hist[3] = t2;
            for (int64_t k = 0; k < c; k++) mew[k] = mew[k] * keep + zmv[k] * mewma;
            const double instant = median / t2_limit;
            const double drift = quadratic(p, mew, c, t2_on, dterms) / ewma_limit;
            for (int64_t k = 0; k < c; k++) sh[k] = drift > instant ? dterms[k] : terms[k];
            dvr[1] = nan_to_num(np_fmax(instant, drift));
        }
        const double *restrict chr = ch + j * c * N_CH;
        double best = chr[0];
        for (int64_t m = 1; m < c * N_CH; m++) best = chr[m] > best ? chr[m] : best;
        double best_dev = dvr[1];
        if (dropout_alarms && dvr[0] > best_dev) best_dev = dvr[0];
        const double sc = np_fmax(best, best_dev);
        score[j] = sc;
        /* hysteresis: raise after min_duration readings at the raise level (and not in
           the cooldown), clear after clear_duration readings below the clear level */
        above = sc >= raise_level ? above + 1.0 : 0.0;
        below = sc < clear_level ? below + 1.0 : 0.0;
        const int up = alarm == 0.0 && above >= min_duration && cool <= 0.0;
        const int down = alarm > 0.0 && below >= clear_duration;
        cool = down ? cooldown : np_maximum(cool - 1.0, 0.0);
        if (up) {
            alarm = 1.0;
            raised[j] = 1.0;
            since = (double)ts[j];
        } else if (down) {
            alarm = 0.0;
            cleared[j] = 1.0;
        }
        alarm_out[j] = alarm;
        health = health + (np_minimum(sc, 2.0) - health) * a;
    }
    v[off[O_ABOVE]] = above;
    v[off[O_BELOW]] = below;
    v[off[O_COOL]] = cool;
    v[off[O_ALARM]] = alarm;
    v[off[O_HEALTH]] = health;
    v[off[O_ALARM_SINCE]] = since;
    v[off[O_N]] = v[off[O_N]] + (double)n;
}

/*
 * packed (d, size) state vectors, advanced in place; ts (d, t); x (d, t, c); lengths (d,);
 * low, high (d, c); vibration (c,); gate (d, t). Outputs, zeroed by the caller, are written for the
 * first lengths[i] steps of row i: score, alarm, raised, cleared (d, t); ch (d, t, c, 6);
 * dev (d, t, 2); expected, scale, share (d, t, c). Returns 0, or -1 if c is out of range.
 */
int iotpm_kernel(int64_t d, int64_t t, int64_t c, int64_t size, int32_t statistics, const int64_t *off,
                 const double *prm, double *packed, const int64_t *ts, const double *x, const int64_t *lengths,
                 const double *low, const double *high, const double *vibration, const double *gate, double *score,
                 double *alarm_out, double *raised, double *cleared, double *ch, double *dev, double *expected,
                 double *scale, double *share) {
    if (c < 1 || c > MAX_CHANNELS) return -1;
    for (int64_t i = 0; i < d; i++) {
        double *v = packed + i * size;
        const int64_t n = lengths[i], row = i * t;
        for (int64_t k = 0; k < c; k++) {
            channel_pass(prm, n, c, k, statistics, v, off, x + row * c, low[i * c + k], high[i * c + k],
                         vibration[k] > 0, gate + row, ch + row * c * N_CH, expected + row * c, scale + row * c,
                         share + row * c);
        }
        if (statistics) interval_pass(prm, n, v, off, ts + row, dev + row * N_DEV);
        device_pass(prm, n, c, statistics, v, off, ts + row, score + row, alarm_out + row, raised + row,
                    cleared + row, ch + row * c * N_CH, dev + row * N_DEV, share + row * c);
    }
    return 0;
}

/*
 * main.c: hostmem-bench's command line and its two outputs, a table for
 * people and JSON for machines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static void usage(FILE *f)
{
    fputs("usage: hostmem-bench [options]\n"
          "  --quick              tiny iteration counts (a smoke run: figures are not meaningful)\n"
          "  --json               one JSON object on stdout instead of the table\n"
          "  --wide               table with p90, p99.9 and max too\n"
          "  --reps=N             timed batches per side, alternated (default 10; --quick 1)\n"
          "  --only=LIST          families, comma-separated: region,pages,query,scaling,threads,watch,\n"
          "                       metadata, trace, heap, stacks (default: all)\n"
          "  --max-regions=N      largest live-region count of the scaling family (default 100000)\n"
          "  --tracing-mode=LABEL label every row (none, disabled, enabled); changes nothing else\n"
          "  --timer=tsc|clock    rdtsc calibrated against CLOCK_MONOTONIC (default), or\n"
          "                       clock_gettime(CLOCK_MONOTONIC) itself\n"
          "  --no-subtract        keep the timer's own cost in every sample\n"
          "  --seed=N             random region picks (default 1)\n"
          "  --burst=N            only run N operations that each emit one event, then exit\n"
          "  --burst-op=OP        query (default) or protect\n",
          f);
}

static unsigned parse_families(const char *list)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"region", BENCH_FAMILY_REGION},   {"pages", BENCH_FAMILY_PAGES},
                 {"query", BENCH_FAMILY_QUERY},     {"scaling", BENCH_FAMILY_SCALING},
                 {"threads", BENCH_FAMILY_THREADS}, {"metadata", BENCH_FAMILY_METADATA},
                 {"trace", BENCH_FAMILY_TRACE},
                 {"heap", BENCH_FAMILY_HEAP},
                 {"watch", BENCH_FAMILY_WATCH},
                 {"stacks", BENCH_FAMILY_STACKS},
                 {"all", BENCH_FAMILY_ALL}};
    unsigned bits = 0;
    char *copy = strdup(list), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t k;
        for (k = 0; k < sizeof names / sizeof names[0]; k++)
            if (strcmp(tok, names[k].name) == 0)
                break;
        if (k == sizeof names / sizeof names[0]) {
            fprintf(stderr, "hostmem-bench: unknown family '%s'\n", tok);
            exit(2);
        }
        bits |= names[k].bit;
    }
    free(copy);
    return bits;
}

static bool opt_value(const char *arg, const char *name, const char **out)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || arg[n] != '=')
        return false;
    *out = arg + n + 1;
    return true;
}

static void parse_args(int argc, char **argv, bench_options *o)
{
    const char *v;
    bool reps_given = false, regions_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quick") == 0)
            o->quick = true;
        else if (strcmp(a, "--json") == 0)
            o->json = true;
        else if (strcmp(a, "--wide") == 0)
            o->wide = true;
        else if (strcmp(a, "--no-subtract") == 0)
            o->subtract_timer = false;
        else if (opt_value(a, "--reps", &v)) {
            o->reps = (unsigned)strtoul(v, NULL, 10);
            reps_given = true;
        } else if (opt_value(a, "--only", &v))
            o->families = parse_families(v);
        else if (opt_value(a, "--max-regions", &v)) {
            o->max_regions = strtoull(v, NULL, 10);
            regions_given = true;
        } else if (opt_value(a, "--tracing-mode", &v))
            o->tracing_mode = v;
        else if (opt_value(a, "--timer", &v)) {
            if (strcmp(v, "tsc") == 0)
                o->use_tsc = true;
            else if (strcmp(v, "clock") == 0)
                o->use_tsc = false;
            else {
                usage(stderr);
                exit(2);
            }
        } else if (opt_value(a, "--seed", &v))
            o->seed = strtoull(v, NULL, 10) | 1;
        else if (opt_value(a, "--burst", &v))
            o->burst = strtoull(v, NULL, 10);
        else if (opt_value(a, "--burst-op", &v)) {
            if (strcmp(v, "query") != 0 && strcmp(v, "protect") != 0) {
                usage(stderr);
                exit(2);
            }
            o->burst_op = v;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "hostmem-bench: unknown option '%s'\n", a);
            usage(stderr);
            exit(2);
        }
    }
    if (!reps_given)
        o->reps = o->quick ? 1 : 10;
    if (o->reps == 0)
        o->reps = 1;
    if (!regions_given && o->quick)
        o->max_regions = 1000;
    if (o->max_regions < 10)
        o->max_regions = 10;
}

/* ---- output --------------------------------------------------------------- */
static void fmt_ns(char *buf, size_t len, double ns)
{
    if (ns < 100)
        snprintf(buf, len, "%.1f", ns);
    else
        snprintf(buf, len, "%.0f", ns);
}

static void fmt_target(char *buf, size_t len, const bench_target *t)
{
    switch (t->kind) {
    case BENCH_TARGET_RATIO_P50:
        snprintf(buf, len, "<=%.2f", t->value);
        break;
    case BENCH_TARGET_ABS_P50:
        snprintf(buf, len, "<=%.0fns", t->value);
        break;
    default:
        snprintf(buf, len, "-");
    }
}

static const char *verdict_word(int v) { return v < 0 ? "" : v ? "ok" : "MISSED"; }

static void print_table(const bench_options *o)
{
    printf("hostmem-bench: tracing mode %s; timer %s, own cost %.1f ns %s; %u timed batches per "
           "side, alternated%s\n",
           o->tracing_mode, bench_timer_name(), bench_timer_overhead_ns(),
           o->subtract_timer ? "subtracted" : "kept", o->reps,
           o->quick ? "; --quick: figures are NOT meaningful" : "");
    printf("times in ns per operation; ratio = hostmem / floor; target judged on p50 against the "
           "first floor of each operation\n\n");
    char h50[16], h99[16], f50[16], f99[16], sz[16], tg[24], reg[24];
    if (o->wide)
        printf("%-16s %-22s %5s %3s %7s | %9s %9s %9s %9s %9s | %-33s %9s %9s %9s %9s %9s | %6s "
               "%6s | %s\n",
               "operation", "variant", "size", "thr", "regions", "hm p50", "p90", "p99", "p99.9",
               "max", "floor", "p50", "p90", "p99", "p99.9", "max", "r p50", "r p99", "target");
    else
        printf("%-16s %-22s %5s %3s %7s | %9s %9s | %-33s %9s %9s | %6s %6s | %s\n", "operation",
               "variant", "size", "thr", "regions", "hm p50", "hm p99", "floor", "p50", "p99",
               "r p50", "r p99", "target");
    for (size_t i = 0; i < bench_row_count(); i++) {
        const bench_row *r = bench_row_get(i);
        const bench_stats *h = &r->hostmem, *f = &r->floor_stats;
        fmt_ns(h50, sizeof h50, h->p50);
        fmt_ns(h99, sizeof h99, h->p99);
        fmt_ns(f50, sizeof f50, f->p50);
        fmt_ns(f99, sizeof f99, f->p99);
        bench_size_name(r->size, sz, sizeof sz);
        fmt_target(tg, sizeof tg, &r->target);
        if (r->regions)
            snprintf(reg, sizeof reg, "%zu", r->regions);
        else
            snprintf(reg, sizeof reg, "-");
        int v = bench_row_verdict(r);
        char target[48];
        if (v < 0)
            snprintf(target, sizeof target, "%s", r->primary ? "-" : "(reference floor)");
        else
            snprintf(target, sizeof target, "%s %s", tg, verdict_word(v));
        if (o->wide) {
            char h90[16], h999[16], hmax[16], f90[16], f999[16], fmax[16];
            fmt_ns(h90, sizeof h90, h->p90);
            fmt_ns(h999, sizeof h999, h->p999);
            fmt_ns(hmax, sizeof hmax, h->max);
            fmt_ns(f90, sizeof f90, f->p90);
            fmt_ns(f999, sizeof f999, f->p999);
            fmt_ns(fmax, sizeof fmax, f->max);
            printf("%-16s %-22s %5s %3u %7s | %9s %9s %9s %9s %9s | %-33s %9s %9s %9s %9s %9s | "
                   "%6.3f %6.3f | %s\n",
                   r->operation, r->variant, sz, r->threads, reg, h50, h90, h99, h999, hmax,
                   r->floor, f50, f90, f99, f999, fmax, bench_ratio(h->p50, f->p50),
                   bench_ratio(h->p99, f->p99), target);
        } else {
            printf("%-16s %-22s %5s %3u %7s | %9s %9s | %-33s %9s %9s | %6.3f %6.3f | %s\n",
                   r->operation, r->variant, sz, r->threads, reg, h50, h99, r->floor, f50, f99,
                   bench_ratio(h->p50, f->p50), bench_ratio(h->p99, f->p99), target);
        }
    }
    if (bench_metric_count()) {
        printf("\n%-32s %-52s %12s  %s\n", "metric", "detail", "value", "target");
        for (size_t i = 0; i < bench_metric_count(); i++) {
            const bench_metric *mt = bench_metric_get(i);
            char val[32], mtg[48] = "-";
            snprintf(val, sizeof val, "%.*f %s", mt->value < 100 ? 2 : 0, mt->value, mt->unit);
            int v = bench_metric_verdict(mt);
            if (v >= 0)
                snprintf(mtg, sizeof mtg, "%s%.*f %s %s", mt->strict ? "<" : "<=",
                         mt->target_max < 100 ? 2 : 0, mt->target_max, mt->unit, verdict_word(v));
            printf("%-32s %-52s %12s  %s\n", mt->name, mt->detail, val, mtg);
        }
    }
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void json_stats(const char *prefix, const bench_stats *s)
{
    printf("\"%s_p50_ns\": %.1f, \"%s_p90_ns\": %.1f, \"%s_p99_ns\": %.1f, \"%s_p999_ns\": %.1f, "
           "\"%s_max_ns\": %.1f, \"%s_mean_ns\": %.1f, \"%s_samples\": %zu",
           prefix, s->p50, prefix, s->p90, prefix, s->p99, prefix, s->p999, prefix, s->max, prefix,
           s->mean, prefix, s->n);
}

static void print_json(const bench_options *o)
{
    printf("{\"tool\": \"hostmem-bench\", \"schema\": 1, \"tracing_mode\": ");
    json_str(o->tracing_mode);
    printf(", \"quick\": %s, \"reps\": %u, \"timer\": ", o->quick ? "true" : "false", o->reps);
    json_str(bench_timer_name());
    printf(", \"timer_overhead_ns\": %.2f, \"timer_overhead_subtracted\": %s, \"cpus\": %ld,\n",
           bench_timer_overhead_ns(), o->subtract_timer ? "true" : "false",
           sysconf(_SC_NPROCESSORS_ONLN));
    printf(" \"rows\": [");
    for (size_t i = 0; i < bench_row_count(); i++) {
        const bench_row *r = bench_row_get(i);
        printf("%s\n  {\"operation\": ", i ? "," : "");
        json_str(r->operation);
        printf(", \"variant\": ");
        json_str(r->variant);
        printf(", \"size\": %zu, \"threads\": %u, \"regions\": %zu, \"tracing_mode\": ", r->size,
               r->threads, r->regions);
        json_str(o->tracing_mode);
        printf(", \"floor\": ");
        json_str(r->floor);
        printf(", \"primary\": %s, ", r->primary ? "true" : "false");
        json_stats("hostmem", &r->hostmem);
        printf(", ");
        json_stats("floor", &r->floor_stats);
        printf(", \"ratio_p50\": %.4f, \"ratio_p99\": %.4f",
               bench_ratio(r->hostmem.p50, r->floor_stats.p50),
               bench_ratio(r->hostmem.p99, r->floor_stats.p99));
        int v = bench_row_verdict(r);
        if (v < 0) {
            printf(", \"target\": null, \"target_met\": null}");
        } else {
            printf(", \"target\": {\"metric\": \"%s\", \"max\": %g}, \"target_met\": %s}",
                   r->target.kind == BENCH_TARGET_RATIO_P50 ? "ratio_p50" : "hostmem_p50_ns",
                   r->target.value, v ? "true" : "false");
        }
    }
    printf("\n ],\n \"metrics\": [");
    for (size_t i = 0; i < bench_metric_count(); i++) {
        const bench_metric *mt = bench_metric_get(i);
        printf("%s\n  {\"name\": ", i ? "," : "");
        json_str(mt->name);
        printf(", \"detail\": ");
        json_str(mt->detail);
        printf(", \"value\": %.3f, \"unit\": ", mt->value);
        json_str(mt->unit);
        int v = bench_metric_verdict(mt);
        if (v < 0)
            printf(", \"target\": null, \"target_met\": null}");
        else
            printf(", \"target\": {\"%s\": %g}, \"target_met\": %s}", mt->strict ? "lt" : "max",
                   mt->target_max, v ? "true" : "false");
    }
    printf("\n ]\n}\n");
}

int main(int argc, char **argv)
{
    bench_options o = {.subtract_timer = true,
                       .use_tsc = true,
                       .families = BENCH_FAMILY_ALL,
                       .max_regions = 100000,
                       .tracing_mode = "none",
                       .seed = 1,
                       .burst_op = "query"};
    parse_args(argc, argv, &o);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);

    bench_env env = {.opt = &o, .page = (size_t)sysconf(_SC_PAGESIZE)};
    if (o.burst)
        return bench_burst(&env) ? 1 : 0;

    bench_timer_init(&o);
    if (bench_check_hr(hostmem_create(NULL, &env.m), "hostmem_create"))
        return 1;

    static const struct {
        unsigned bit;
        int (*run)(bench_env *);
        const char *name;
    } families[] = {{BENCH_FAMILY_REGION, bench_family_region, "region"},
                    {BENCH_FAMILY_PAGES, bench_family_pages, "pages"},
                    {BENCH_FAMILY_QUERY, bench_family_query, "query"},
                    {BENCH_FAMILY_SCALING, bench_family_scaling, "scaling"},
                    {BENCH_FAMILY_THREADS, bench_family_threads, "threads"},
                    {BENCH_FAMILY_METADATA, bench_family_metadata, "metadata"},
                    {BENCH_FAMILY_TRACE, bench_family_trace, "trace"},
                    {BENCH_FAMILY_HEAP, bench_family_heap, "heap"},
                    {BENCH_FAMILY_WATCH, bench_family_watch, "watch"},
                    {BENCH_FAMILY_STACKS, bench_family_stacks, "stacks"}};
    for (size_t k = 0; k < sizeof families / sizeof families[0]; k++) {
        if (!(o.families & families[k].bit))
            continue;
        if (!o.json)
            fprintf(stderr, "hostmem-bench: %s ...\n", families[k].name);
        families[k].run(&env);
    }
    hostmem_destroy(env.m);

    if (o.json)
        print_json(&o);
    else
        print_table(&o);
    /* Exit status reports whether every call worked, never how fast. */
    return bench_failed() ? 1 : 0;
}

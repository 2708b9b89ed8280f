/* The tests' instruction-set switch shared by the extensions with an AVX2 path (_dual, _cells,
 * _delta): their _set_isa(name) parses the name and calls bs_select_isa.
 *
 * Why a header: the three copies of this parse-and-check were the same lines (the duplicates
 * check); each extension keeps its own flag and its own extra names (_delta's "avx2-eager"). */
#ifndef BIGSMALL_NATIVE_ISA_H
#define BIGSMALL_NATIVE_ISA_H

#include <Python.h>
#include <string.h>

/* *use_avx2 from name ("scalar" or "avx2"; avx2 needs a build with it, ``built``, and a CPU
 * with AVX2 and BMI2). 0, or -1 with ValueError set (``names``: the accepted names, for it). */
static int bs_select_isa(const char *name, int built, int *use_avx2, const char *names) {
    if (strcmp(name, "scalar") == 0) {
        *use_avx2 = 0;
        return 0;
    }
    if (strcmp(name, "avx2") != 0) {
        PyErr_Format(PyExc_ValueError, "isa must be %s", names);
        return -1;
    }
    if (!built) {
        PyErr_SetString(PyExc_ValueError, "built without the AVX2 kernels");
        return -1;
    }
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2"))) {
        PyErr_SetString(PyExc_ValueError, "this CPU has no AVX2/BMI2");
        return -1;
    }
#endif
    *use_avx2 = 1;
    return 0;
}

#endif

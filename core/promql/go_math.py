"""Go's math.Log, Log2 and Log10, step for step, so ln/log2/log10 match Prometheus bit for bit.

Log is fdlibm's e_log.c algorithm (as FreeBSD's msun and Go's math package have it), whose notice says:
"Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved. Developed at SunPro, a Sun
Microsystems, Inc. business. Permission to use, copy, modify, and distribute this software is freely
granted, provided that this notice is preserved."

C's libm rounds some results differently (glibc's log is correctly rounded, Go's is within one ulp),
and Go's Log2/Log10 are not libm's log2/log10 at all: Log2 is Log(frac)/Ln2 + exp, Log10 is Log
scaled. Go does not fuse multiply-adds on amd64, so plain Python float arithmetic reproduces it.
"""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

getcontext().prec = 60
_LN2_EXACT = Decimal("0.693147180559945309417232121458176568075500134360255254120680009")
_LN10_EXACT = Decimal("2.30258509299404568401799145468436420760110148862877297603332790")
_INV_LN2 = float(1 / _LN2_EXACT)  # Go constant arithmetic is exact, then rounded once
_INV_LN10 = float(1 / _LN10_EXACT)
_SQRT2_HALF = math.sqrt(2) / 2

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_L1 = 6.666666666666735130e-01
_L2 = 3.999999999940941908e-01
_L3 = 2.857142874366239149e-01
_L4 = 2.222219843214978396e-01
_L5 = 1.818357216161805012e-01
_L6 = 1.531383769920937332e-01
_L7 = 1.479819860511658591e-01


def log(x: float) -> float:
    """math.Log (FreeBSD's e_log.c as Go has it)."""
    if math.isnan(x) or x == math.inf:
        return x
    if x < 0:
        return math.nan
    if x == 0:
        return -math.inf
    f1, ki = math.frexp(x)
    if f1 < _SQRT2_HALF:
        f1 *= 2
        ki -= 1
    f = f1 - 1
    k = float(ki)
    s = f / (2 + f)
    s2 = s * s
    s4 = s2 * s2
    t1 = s2 * (_L1 + s4 * (_L3 + s4 * (_L5 + s4 * _L7)))
    t2 = s4 * (_L2 + s4 * (_L4 + s4 * _L6))
    r = t1 + t2
    hfsq = 0.5 * f * f
    return k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)


def log2(x: float) -> float:
    """math.Log2: exact for powers of two."""
    frac, exp = math.frexp(x)
    if frac == 0.5:
        return float(exp - 1)
    return log(frac) * _INV_LN2 + float(exp)


def log10(x: float) -> float:
    """math.Log10: Log scaled, not Log2."""
    return log(x) * _INV_LN10

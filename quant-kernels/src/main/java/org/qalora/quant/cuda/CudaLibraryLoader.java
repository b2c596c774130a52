package org.qalora.quant.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.util.List;

/**
 * Opens a CUDA toolkit library (cuBLAS, cuSOLVER) by soname at run time: the first of its sonames, newest first,
 * that the dynamic linker finds, so one build runs on whichever CUDA the host has and no binding is pinned to a
 * version. The library is mapped for the life of the process ({@link Arena#global}).
 */
final class CudaLibraryLoader {
    private CudaLibraryLoader() {}

    /** Makes the binding (symbols, a handle) from a loaded library; may throw {@link CudaException}. */
    interface Binder<T> {
        T bind(SymbolLookup lib, String soname);
    }

    /**
     * Binds the first of {@code sonames} that loads. A library that loads but fails to bind is an error naming
     * its soname (a later soname is not tried: the host's library is broken, not missing); none loading is an
     * error listing what was tried and saying {@code install} (what to install).
     */
    static <T> T openFirst(String library, List<String> sonames, Binder<T> binder, String install) {
        StringBuilder tried = new StringBuilder();
        for (String soname : sonames) {
            SymbolLookup lib;
            try {
                lib = SymbolLookup.libraryLookup(soname, Arena.global());
            } catch (IllegalArgumentException e) {
                tried.append(tried.isEmpty() ? "" : ", ").append(soname);
                continue;
            }
            try {
                return binder.bind(lib, soname);
            } catch (CudaException e) {
                throw new CudaException(soname + ": " + e.getMessage(), e.status());
            }
        }
        throw new CudaException("no " + library + " library found (tried " + tried + "): " + install
                + " or put it on LD_LIBRARY_PATH");
    }

    /** The address of {@code name} in {@code lib}, or an error naming the library and the symbol. */
    static MemorySegment symbol(SymbolLookup lib, String library, String name) {
        return lib.find(name).orElseThrow(() -> new CudaException(library + " has no symbol " + name));
    }
}

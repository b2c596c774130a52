package org.qalora.quant.io;

import java.io.IOException;

/**
 * A file exists and could be read but its content is not what the format promises (corrupt or truncated
 * safetensors, a config.json missing a field, a GPTQ tensor of the wrong shape). The message always names the file
 * and, where there is one, the tensor or field, and says what would fix it.
 */
public class FormatException extends IOException {
    public FormatException(String message) {
        super(message);
    }

    public FormatException(String message, Throwable cause) {
        super(message, cause);
    }
}

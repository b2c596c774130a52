package org.qalora.quant.io;

import java.io.Serializable;
import java.util.HashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;

/**
 * The driver's Hadoop configuration, carried to executors inside a task closure or a broadcast value
 * ({@code Configuration} itself is not serializable), so that tasks see the same filesystems (e.g. the
 * MiniDFSCluster or a Kerberized HDFS). The one way this project ships it: the training rounds (driver) and the
 * prepare job (datasets) both use it. The entries are copied when it is made; {@link #get()} rebuilds the
 * configuration once per deserialized copy.
 */
public final class ShippedHadoopConf implements Serializable {
    private static final long serialVersionUID = 1L;
    private final HashMap<String, String> entries = new HashMap<>();
    private transient Configuration conf;

    public ShippedHadoopConf(Configuration source) {
        for (Map.Entry<String, String> e : source) {
            entries.put(e.getKey(), e.getValue());
        }
    }

    public synchronized Configuration get() {
        if (conf == null) {
            Configuration c = new Configuration(false);
            entries.forEach(c::set);
            conf = c;
        }
        return conf;
    }
}

package org.qalora.driver.pipeline;

import java.io.File;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Instant;
import java.util.List;
import java.util.function.Consumer;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileAlreadyExistsException;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hdfs.DistributedFileSystem;
import org.apache.hadoop.ipc.RemoteException;
import org.qalora.driver.checkpoint.Storage;
import org.qalora.driver.config.InvalidSettingsException;

/**
 * One driver at a time per output directory: {@code OUTPUT/_LOCK}, held for the whole run, so that a second run on
 * the same output (a scheduled tick overlapping a run still going, a manual rerun) is refused in a second, naming
 * the holder, before it reads or writes anything else there. The lock must free itself when its holder dies by
 * SIGKILL (no finally block runs), so liveness comes from something that dies with the process, never from a clock:
 * <ul>
 *   <li><b>HDFS</b>: the holder creates the file ({@code create(overwrite=false)}, atomic in the NameNode), writes
 *   one line naming itself, hflushes, and keeps it <em>open</em>: its client renews the file's lease while the JVM
 *   lives. Another client's {@code create} fails with AlreadyBeingCreatedException while that lease is live; once the
 *   holder is dead for the lease's soft limit (60 s), the NameNode recovers the lease and closes the file, and the
 *   next driver takes the closed file over with {@code append} (which also grants a lease to one client only: two
 *   contenders never both win). A dead holder on this very host (its pid is gone: a driver restarted in place) is
 *   not waited for: its lease is recovered at once. {@code create(overwrite=true)} is never used: it would delete a
 *   live holder's file.
 *   <li><b>Local file system</b>: an OS file lock ({@code FileChannel.tryLock}) on the file, which the kernel drops
 *   when the process dies.
 *   <li><b>Other file systems</b> (s3a, ...): only the atomic create; they cannot tell a dead holder from a live one,
 *   so a left lock file must be deleted by hand (the refusal says so).
 * </ul>
 * Release deletes the file while still holding it (so nobody can take it over in between), then lets go. A crash
 * between the two leaves a closed file that the next driver takes over. {@code --force} does not break a lock:
 * it only concerns what the directory holds.
 */
public final class OutputLock implements AutoCloseable {
    public static final String FILE = "_LOCK";
    /** How long a contender waits for the NameNode to close a dead holder's file once its lease recovery started. */
    private static final long RECOVERY_WAIT_MILLIS = 30_000;
    private static final String ALREADY_BEING_CREATED = "org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException";
    private static final String RECOVERY_IN_PROGRESS = "org.apache.hadoop.hdfs.protocol.RecoveryInProgressException";

    /** The local lock files this JVM holds (see {@link #local}). */
    private static final java.util.Set<java.nio.file.Path> HELD_HERE = java.util.concurrent.ConcurrentHashMap.newKeySet();

    private final Storage storage;
    private final Path file;
    private final boolean createdRoot;
    private final FSDataOutputStream hdfsStream;   // HDFS: the open file whose lease is the lock
    private final FileChannel localChannel;        // local: the channel whose OS lock is the lock
    private final FileLock localLock;
    private final java.nio.file.Path localPath;
    private final Consumer<String> progress;

    private OutputLock(Storage storage, Path file, boolean createdRoot, FSDataOutputStream hdfsStream,
                       FileChannel localChannel, FileLock localLock, java.nio.file.Path localPath,
                       Consumer<String> progress) {
        this.storage = storage;
        this.file = file;
        this.createdRoot = createdRoot;
        this.hdfsStream = hdfsStream;
        this.localChannel = localChannel;
        this.localLock = localLock;
        this.localPath = localPath;
        this.progress = progress;
    }

    /** This process, as the lock's line names it: what the refusal of a second run shows. */
    public static String thisHolder() {
        String host;
        try {
            host = InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            host = "unknown-host";
        }
        return "pid " + ProcessHandle.current().pid() + " on " + host + " (user " + System.getProperty("user.name")
                + ", since " + Instant.now() + ")";
    }

    /**
     * Takes the lock of output directory {@code root} (creating the directory if needed; {@link #close} removes it
     * again if the run left it empty) or throws {@link InvalidSettingsException} naming the output and the holder.
     */
    public static OutputLock acquire(Storage storage, Path root, Consumer<String> progress) {
        boolean createdRoot = !storage.exists(root);
        Path file = new Path(root, FILE);
        FileSystem fs = storage.fs(file);
        try {
            if (createdRoot) {
                storage.mkdirs(root);
            }
            String line = thisHolder() + "\n";
            if (fs instanceof DistributedFileSystem dfs) {
                return new OutputLock(storage, file, createdRoot, hdfs(dfs, file, line, progress), null, null, null,
                        progress);
            }
            if ("file".equals(fs.getUri().getScheme())) {
                return local(storage, file, createdRoot, line, progress);
            }
            FSDataOutputStream out = create(fs, file);
            if (out == null) {
                throw refusal(file, holderOf(fs, file), "this file system cannot tell whether that driver is still "
                        + "running: if it is not, delete " + file + " and rerun");
            }
            try (out) {
                out.write(line.getBytes(StandardCharsets.UTF_8));
            }
            return new OutputLock(storage, file, createdRoot, null, null, null, null, progress);
        } catch (IOException e) {
            cleanUp(storage, root, createdRoot);
            throw Storage.failure("lock", file, e);
        } catch (RuntimeException e) {
            cleanUp(storage, root, createdRoot);
            throw e;
        }
    }

    /** HDFS: create, or take over a closed (dead holder's) file by append; the returned stream stays open. */
    private static FSDataOutputStream hdfs(DistributedFileSystem dfs, Path file, String line, Consumer<String> progress)
            throws IOException {
        long deadline = System.currentTimeMillis() + RECOVERY_WAIT_MILLIS;
        while (true) {
            FSDataOutputStream out;
            try {
                out = create(dfs, file);
                if (out == null) {   // the file exists and is closed: its holder is gone (released or recovered)
                    String was = holderOf(dfs, file);
                    try {
                        out = dfs.append(file);
                    } catch (java.io.FileNotFoundException gone) {
                        continue;   // its holder deleted it in between (a release): create it afresh
                    }
                    progress.accept("output lock: took over " + file + ", left by " + was + " (that driver ended "
                            + "without removing it)");
                }
            } catch (RemoteException e) {
                String holder = holderOf(dfs, file);
                boolean live = ALREADY_BEING_CREATED.equals(e.getClassName());
                boolean recovering = RECOVERY_IN_PROGRESS.equals(e.getClassName());
                if (!live && !recovering) {
                    throw e;
                }
                if (System.currentTimeMillis() < deadline && (recovering || deadOnThisHost(holder))) {
                    if (!recovering) {
                        progress.accept("output lock: " + file + " is held by " + holder + ", a process of this host "
                                + "that no longer runs: recovering its HDFS lease now");
                        dfs.recoverLease(file);
                    }
                    // The NameNode closes the dead holder's file once lease recovery ends; then it can be taken over.
                    while (!dfs.isFileClosed(file) && System.currentTimeMillis() < deadline) {
                        sleep(200);
                    }
                    continue;
                }
                throw refusal(file, holder, "its HDFS lease is live, so that driver is still running (a driver "
                        + "killed on another host frees it once HDFS expires the lease, about a minute later: "
                        + "rerun then)");
            }
            out.write(line.getBytes(StandardCharsets.UTF_8));
            out.hflush();   // contenders read who holds it
            return out;
        }
    }

    /**
     * Local: an OS lock on the file. Locks of this JVM are also kept in {@link #HELD_HERE}, because on Linux closing
     * any channel of a file drops every lock this process holds on it, so a second pipeline of this JVM must not even
     * open the file. After locking, the file at the path must still be the locked one (a releaser deletes it).
     */
    private static OutputLock local(Storage storage, Path file, boolean createdRoot, String line,
                                    Consumer<String> progress) throws IOException {
        java.nio.file.Path path = new File(file.toUri().getPath()).toPath().toAbsolutePath().normalize();
        if (!HELD_HERE.add(path)) {
            throw refusal(file, holderOf(storage.fs(file), file), "that run is in this very process");
        }
        try {
            while (true) {
                FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.READ,
                        StandardOpenOption.WRITE);
                Object opened = fileKey(path);
                FileLock lock = ch.tryLock();
                if (lock == null) {
                    ch.close();
                    throw refusal(file, holderOf(storage.fs(file), file), "its OS file lock is held, so that driver "
                            + "is still running");
                }
                if (opened == null || !opened.equals(fileKey(path))) {
                    lock.release();
                    ch.close();
                    continue;   // released and deleted in between: lock the file that is there now
                }
                if (ch.size() > 0) {
                    progress.accept("output lock: took over " + file + ", left by " + holderOf(storage.fs(file), file)
                            + " (that driver ended without removing it)");
                }
                ch.truncate(0);
                ch.write(java.nio.ByteBuffer.wrap(line.getBytes(StandardCharsets.UTF_8)));
                ch.force(true);
                return new OutputLock(storage, file, createdRoot, null, ch, lock, path, progress);
            }
        } catch (IOException | RuntimeException e) {
            HELD_HERE.remove(path);
            throw e;
        }
    }

    private static Object fileKey(java.nio.file.Path path) {
        try {
            return Files.readAttributes(path, BasicFileAttributes.class).fileKey();
        } catch (IOException e) {
            return null;
        }
    }

    /** {@code create(overwrite=false)}, or null when the file exists (closed). */
    private static FSDataOutputStream create(FileSystem fs, Path file) throws IOException {
        try {
            return fs.create(file, false);
        } catch (FileAlreadyExistsException e) {
            return null;
        }
    }

    /** The last complete line of the lock file: who holds (or held) it. */
    static String holderOf(FileSystem fs, Path file) {
        try (var in = fs.open(file)) {
            List<String> lines = new String(in.readAllBytes(), StandardCharsets.UTF_8).lines()
                    .filter(l -> !l.isBlank()).toList();
            return lines.isEmpty() ? "a driver that had not written its name yet" : lines.getLast();
        } catch (IOException e) {
            return "an unknown driver (" + file + " is unreadable: " + e.getMessage() + ")";
        }
    }

    /** A holder line of this host whose pid no longer runs (a driver restarted in place after a SIGKILL). */
    static boolean deadOnThisHost(String holder) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("^pid (\\d+) on (\\S+) ").matcher(holder);
        if (!m.find()) {
            return false;
        }
        String host;
        try {
            host = InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return false;
        }
        return host.equals(m.group(2)) && ProcessHandle.of(Long.parseLong(m.group(1))).map(p -> !p.isAlive())
                .orElse(true);
    }

    private static InvalidSettingsException refusal(Path file, String holder, String why) {
        return new InvalidSettingsException("cannot start the run (nothing was started or written)",
                List.of("--output " + file.getParent() + " is in use by another run: " + file + " is held by " + holder
                        + "; " + why + ". Two runs on one output would mix their checkpoints: wait for it to "
                        + "finish, or use another --output"));
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for the output lock", e);
        }
    }

    private static void cleanUp(Storage storage, Path root, boolean createdRoot) {
        if (!createdRoot) {
            return;
        }
        try {
            FileSystem fs = storage.fs(root);
            if (fs.exists(root) && fs.listStatus(root).length == 0) {
                fs.delete(root, false);
            }
        } catch (IOException | RuntimeException ignored) {
            // best effort: an empty directory is all a refused run could leave
        }
    }

    public Path file() { return file; }

    /** Deletes the lock file while still holding it, then lets go; removes the output again if it is empty. */
    @Override
    public void close() {
        try {
            storage.fs(file).delete(file, false);
        } catch (IOException e) {
            progress.accept("output lock: cannot delete " + file + " (" + e.getMessage() + "); the next run takes it "
                    + "over");
        }
        try {
            if (hdfsStream != null) {
                hdfsStream.close();
            }
            if (localLock != null) {
                localLock.release();
                localChannel.close();
                HELD_HERE.remove(localPath);
            }
        } catch (IOException e) {
            // the file is gone (deleted above): closing its stream may fail, and nothing depends on it
        }
        cleanUp(storage, file.getParent(), createdRoot);
    }

    @Override
    public String toString() { return "OutputLock[" + file + "]"; }
}

package clickstream.hadoop;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's local file system (checksums and all), with file and folder permissions set by Java's own
 * call instead of a {@code chmod} process.
 *
 * <p>Without Hadoop's native library (no Maven artifact ships it), {@link RawLocalFileSystem} starts
 * a {@code chmod} process for every file and folder it creates. A Spark write of a couple of hundred
 * hourly partitions spent most of its time starting them: 207 small partitions took 3 to 4 s to write,
 * and 1.1 s with this class. The permissions set are the same. Spark uses it for {@code file:} paths
 * when it runs on a local master ({@code app/spark_session.py}).
 */
public class ForklessLocalFileSystem extends LocalFileSystem {
  public ForklessLocalFileSystem() {
    super(new Raw());
  }

  /** The raw local file system underneath, with {@code setPermission} through java.nio. */
  public static class Raw extends RawLocalFileSystem {
    // bit i of a POSIX mode, from "others execute" (bit 0) to "owner read" (bit 8)
    private static final PosixFilePermission[] MODE_BITS = {
      PosixFilePermission.OTHERS_EXECUTE,
      PosixFilePermission.OTHERS_WRITE,
      PosixFilePermission.OTHERS_READ,
      PosixFilePermission.GROUP_EXECUTE,
      PosixFilePermission.GROUP_WRITE,
      PosixFilePermission.GROUP_READ,
      PosixFilePermission.OWNER_EXECUTE,
      PosixFilePermission.OWNER_WRITE,
      PosixFilePermission.OWNER_READ,
    };

    @Override
    public void setPermission(Path path, FsPermission permission) throws IOException {
      int mode = permission.toShort();
      if ((mode & ~0777) != 0) {
        super.setPermission(path, permission); // a sticky bit: java.nio cannot set it
        return;
      }
      Set<PosixFilePermission> permissions = EnumSet.noneOf(PosixFilePermission.class);
      for (int bit = 0; bit < MODE_BITS.length; bit++) {
        if ((mode & (1 << bit)) != 0) {
          permissions.add(MODE_BITS[bit]);
        }
      }
      Files.setPosixFilePermissions(pathToFile(path).toPath(), permissions);
    }
  }
}

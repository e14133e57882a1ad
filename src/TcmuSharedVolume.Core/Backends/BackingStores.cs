using System.Runtime.InteropServices;
using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Backends;

/// <summary>Opens the right store for a path: block device or (sparse) regular file.</summary>
public static unsafe class BackingStores
{
    public static IBackingStore Open(string path, BackingStoreOptions? options = null)
    {
        options ??= BackingStoreOptions.Default;
        if (!Path.Exists(path))
            return SparseFileStore.Open(path, options); // creates it if a size is given

        // Read-only, non-blocking: only to ask what the path is.
        int fd = Libc.open(path, Libc.O_RDONLY | Libc.O_CLOEXEC | Libc.O_NONBLOCK, 0);
        if (fd < 0) throw FileDescriptorIo.Error($"open {path}", Marshal.GetLastPInvokeError());
        StatBuffer st;
        try
        {
            if (Libc.fstat(fd, &st) < 0) throw FileDescriptorIo.Error("fstat", Marshal.GetLastPInvokeError());
        }
        finally
        {
            Libc.close(fd);
        }
        if (st.IsBlockDevice) return BlockDeviceStore.Open(path, options);
        if (st.IsRegularFile) return SparseFileStore.Open(path, options);
        throw new BackingStoreException($"{path} is neither a regular file nor a block device", 22);
    }
}

using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    /// <summary>iov is a struct iovec array.</summary>
    [LibraryImport(Library, EntryPoint = "rbd_aio_readv")]
    public static partial int rbd_aio_readv(nint image, void* iov, int iovcnt, ulong offset, nint completion);
}

using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    /// <summary>iov is a struct iovec array. No op flags: a FUA write of several segments needs a flush after it.</summary>
    [LibraryImport(Library, EntryPoint = "rbd_aio_writev")]
    public static partial int rbd_aio_writev(nint image, void* iov, int iovcnt, ulong offset, nint completion);
}

using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    [LibraryImport(Library, EntryPoint = "rbd_aio_flush")]
    public static partial int rbd_aio_flush(nint image, nint completion);
}

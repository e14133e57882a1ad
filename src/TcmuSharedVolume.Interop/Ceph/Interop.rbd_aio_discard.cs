using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    [LibraryImport(Library, EntryPoint = "rbd_aio_discard")]
    public static partial int rbd_aio_discard(nint image, ulong offset, ulong length, nint completion);
}

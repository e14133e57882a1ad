using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    /// <summary>opFlags: LIBRADOS_OP_FLAG_* (FADVISE_FUA).</summary>
    [LibraryImport(Library, EntryPoint = "rbd_aio_write2")]
    public static partial int rbd_aio_write2(nint image, ulong offset, nuint length, byte* buffer, nint completion, int opFlags);
}

using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    /// <summary>Bytes read for a read, 0 for a successful write, or a negative errno.</summary>
    [LibraryImport(Library, EntryPoint = "rbd_aio_get_return_value")]
    public static partial nint rbd_aio_get_return_value(nint completion);
}

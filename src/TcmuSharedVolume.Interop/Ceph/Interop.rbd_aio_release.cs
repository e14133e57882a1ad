using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    /// <summary>Safe inside the completion callback.</summary>
    [LibraryImport(Library, EntryPoint = "rbd_aio_release")]
    public static partial void rbd_aio_release(nint completion);
}

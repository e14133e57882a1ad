using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    /// <summary>Waits for the image's in-flight requests.</summary>
    [LibraryImport(Library, EntryPoint = "rbd_close")]
    public static partial int rbd_close(nint image);
}

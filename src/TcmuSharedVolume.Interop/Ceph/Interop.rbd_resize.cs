using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    [LibraryImport(Library, EntryPoint = "rbd_resize")]
    public static partial int rbd_resize(nint image, ulong size);
}

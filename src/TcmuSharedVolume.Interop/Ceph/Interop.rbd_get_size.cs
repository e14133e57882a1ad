using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    [LibraryImport(Library, EntryPoint = "rbd_get_size")]
    public static partial int rbd_get_size(nint image, ulong* size);
}

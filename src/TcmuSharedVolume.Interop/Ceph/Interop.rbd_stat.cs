using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    [LibraryImport(Library, EntryPoint = "rbd_stat")]
    public static partial int rbd_stat(nint image, RbdImageInfo* info, nuint infoSize);
}

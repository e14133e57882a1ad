using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    [LibraryImport(Library, EntryPoint = "rados_buffer_free")]
    public static partial void rados_buffer_free(byte* buffer);
}
